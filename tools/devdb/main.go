// Command devdb runs FerretDB (a MongoDB wire-protocol server) on its SQLite backend.
//
// It exists because `go install` of FerretDB's own command panics at start: its version
// file is not part of the published module. The embeddable package has no such problem.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with -pprof, for profiling under load
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// sqliteParams make writers queue instead of failing. FerretDB runs read-then-write
// transactions; begun DEFERRED, the loser of a race to upgrade to a write lock gets
// "database is locked" at once, since busy_timeout does not apply to a lock upgrade.
// BEGIN IMMEDIATE takes the write lock up front and waits for it (busy_timeout).
// synchronous(normal) is the usual companion of WAL: a crash of this process loses
// nothing committed; only an OS crash or power loss could lose the last transactions.
const sqliteParams = "_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)"

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data", ".data/ferretdb", "directory for the SQLite databases")
	pprofAddr := flag.String("pprof", "", "serve Go's pprof on this loopback address (profiling)")
	flag.Parse()

	if *pprofAddr != "" {
		go func() { fmt.Fprintln(os.Stderr, "devdb: pprof:", http.ListenAndServe(*pprofAddr, nil)) }()
	}

	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		fail(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(err)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/?" + sqliteParams,
	})
	if err != nil {
		fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(os.Stderr, "devdb: FerretDB v1.24.2 (sqlite) listening on %s, data in %s\n", *listen, dir)
	if err := f.Run(ctx); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "devdb:", err)
	os.Exit(1)
}
