#!/usr/bin/env bash
# Make sure a MongoDB wire-protocol server answers at $MONGO_URL (default mongodb://127.0.0.1:27017/).
#
#   scripts/ensure_mongo.sh          ensure one runs (no-op when something already answers)
#   scripts/ensure_mongo.sh stop     stop the devdb/mongod that this script started
#
# Which server, in order:
#   1. whatever already answers at MONGO_URL (a real MongoDB, a container, a running devdb);
#   2. `mongod`, when it is on PATH (data in $STACK_DATA/mongodb);
#   3. devdb: FerretDB v1.24.2 on SQLite (tools/devdb), built once with Go and cached outside
#      the work tree, keyed by a hash of its sources (data in $STACK_DATA/ferretdb).
# MONGO_SERVER=devdb|mongod forces the choice between 2 and 3 (default: auto).
# DEVDB_BIN=/path/to/devdb uses that binary instead of building one.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MONGO_URL="${MONGO_URL:-mongodb://127.0.0.1:27017/}"
MONGO_SERVER="${MONGO_SERVER:-auto}"
START_TIMEOUT="${MONGO_START_TIMEOUT:-60}"
STACK_DATA="${STACK_DATA:-.data}"
case "$STACK_DATA" in
    /*) ;;
    *) STACK_DATA="$REPO_ROOT/$STACK_DATA" ;;
esac
if [ -z "${HOME:-}" ]; then
    HOME="$(getent passwd "$(id -u)" | cut -d: -f6)"
    export HOME
fi
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/chat-backend"
DEVDB_SRC="$REPO_ROOT/tools/devdb"
DEVDB_PID="$STACK_DATA/devdb.pid"
MONGOD_PID="$STACK_DATA/mongod.pid"
LOG_DIR="$STACK_DATA/logs"

log() { printf 'ensure_mongo: %s\n' "$*" >&2; }

# The probe speaks the wire protocol through PyMongo, from the project's venv (`make install`).
VENV_PYTHON="${VENV_PYTHON:-$REPO_ROOT/.venv/bin/python}"
if ! "$VENV_PYTHON" -c 'import pymongo' 2>/dev/null; then
    log "no project venv with pymongo at $VENV_PYTHON: run \`make install\` first (or set VENV_PYTHON)"
    exit 1
fi

# ---------------------------------------------------------------------------------------------
# Small helpers in Python (python3 for URL parsing; the probe uses the venv's PyMongo).

# Prints "host port" of the first host in MONGO_URL, or "srv -" for mongodb+srv URLs.
url_host_port() {
    python3 - "$MONGO_URL" <<'PY'
import sys
url = sys.argv[1]
scheme, sep, rest = url.partition("://")
if not sep or scheme not in ("mongodb", "mongodb+srv"):
    sys.exit(f"not a mongodb:// URL: {url}")
if scheme == "mongodb+srv":
    print("srv -")
    sys.exit(0)
hosts = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
first = hosts.split(",", 1)[0] or "127.0.0.1"
if first.startswith("["):  # [ipv6]:port
    host, _, tail = first[1:].partition("]")
    port = tail.lstrip(":") or "27017"
else:
    host, _, port = first.partition(":")
    port = port or "27017"
if not port.isdigit():
    sys.exit(f"bad port in MONGO_URL: {url}")
print(host or "127.0.0.1", port)
PY
}

# Exit 0 when a MongoDB wire-protocol server answers at host:port; prints what it is.
# Exit 1 when nothing listens, 2 when something listens but does not speak the protocol.
mongo_probe() {
    "$VENV_PYTHON" - "$MONGO_HOST" "$MONGO_PORT" <<'PY'
import socket, sys
from pymongo import MongoClient
from pymongo.errors import PyMongoError

host, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((host, port), timeout=2).close()
except OSError:
    sys.exit(1)
client = MongoClient(host, port, serverSelectionTimeoutMS=5000, connectTimeoutMS=2000)
try:
    info = client.admin.command("buildInfo")
except PyMongoError:
    sys.exit(2)
finally:
    client.close()
if "ferretdbVersion" in info:
    fv = info["ferretdbVersion"]
    fv = "" if fv in ("", "unknown") else f" {fv}"
    print(f"FerretDB{fv} (MongoDB {info.get('version', '?')} compatible)")
else:
    print(f"MongoDB {info.get('version', '?')}")
PY
}

pid_alive() {  # pid_alive PIDFILE NAME: the pid in PIDFILE runs a command whose name contains NAME
    local pid
    [ -f "$1" ] || return 1
    pid="$(cat "$1" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

stop_pidfile() {  # stop_pidfile PIDFILE NAME
    local pidfile="$1" name="$2" pid i
    if ! pid_alive "$pidfile" "$name"; then
        rm -f "$pidfile"
        return 0
    fi
    pid="$(cat "$pidfile")"
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop in 10s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

# ---------------------------------------------------------------------------------------------

if [ "${1:-}" = stop ]; then
    stop_pidfile "$DEVDB_PID" devdb
    stop_pidfile "$MONGOD_PID" mongod
    exit 0
fi

read -r MONGO_HOST MONGO_PORT < <(url_host_port) || { log "cannot parse MONGO_URL=$MONGO_URL"; exit 1; }
if [ "$MONGO_HOST" = srv ]; then
    echo "mongo: MONGO_URL is a mongodb+srv URL; assuming an external server, not checking it"
    exit 0
fi

rc=0
what="$(mongo_probe)" || rc=$?
if [ "$rc" = 0 ]; then
    owner=""
    if pid_alive "$DEVDB_PID" devdb; then owner=", devdb pid $(cat "$DEVDB_PID")"; fi
    if pid_alive "$MONGOD_PID" mongod; then owner=", mongod pid $(cat "$MONGOD_PID")"; fi
    echo "mongo: $what answers on $MONGO_HOST:$MONGO_PORT$owner"
    exit 0
elif [ "$rc" = 2 ]; then
    log "something listens on $MONGO_HOST:$MONGO_PORT but does not speak the MongoDB protocol; free the port or set MONGO_URL"
    exit 1
fi

case "$MONGO_HOST" in
    127.*|localhost|::1) ;;
    *)
        log "nothing answers at $MONGO_HOST:$MONGO_PORT and it is not a loopback address; start the server there or fix MONGO_URL"
        exit 1
        ;;
esac
case "$MONGO_HOST" in
    localhost) LISTEN_HOST=127.0.0.1 ;;
    *:*) LISTEN_HOST="[$MONGO_HOST]" ;;
    *) LISTEN_HOST="$MONGO_HOST" ;;
esac

mkdir -p "$LOG_DIR"

wait_until_answers() {  # wait_until_answers PID LOGFILE NAME
    local pid="$1" logfile="$2" name="$3" deadline=$((SECONDS + START_TIMEOUT))
    until what="$(mongo_probe)"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited during startup; last lines of $logfile:"
            tail -n 30 "$logfile" >&2 || true
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$name did not answer on $MONGO_HOST:$MONGO_PORT within ${START_TIMEOUT}s; see $logfile"
            tail -n 30 "$logfile" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
}

# --- 2. a real mongod -------------------------------------------------------------------------
if [ "$MONGO_SERVER" = mongod ] || { [ "$MONGO_SERVER" = auto ] && command -v mongod >/dev/null 2>&1; }; then
    command -v mongod >/dev/null 2>&1 || { log "MONGO_SERVER=mongod but mongod is not on PATH"; exit 1; }
    mkdir -p "$STACK_DATA/mongodb"
    log "starting mongod (data $STACK_DATA/mongodb, log $LOG_DIR/mongod.log)"
    mongod --dbpath "$STACK_DATA/mongodb" --bind_ip "$MONGO_HOST" --port "$MONGO_PORT" \
        --fork --logpath "$LOG_DIR/mongod.log" --logappend --pidfilepath "$MONGOD_PID" >&2
    wait_until_answers "$(cat "$MONGOD_PID")" "$LOG_DIR/mongod.log" mongod
    echo "mongo: started mongod (pid $(cat "$MONGOD_PID")): $what on $MONGO_HOST:$MONGO_PORT"
    exit 0
fi

# --- 3. devdb: FerretDB on SQLite -------------------------------------------------------------
find_go() {
    local g
    for g in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go /usr/lib/go/bin/go "$HOME/go/bin/go" "$HOME/sdk/go/bin/go"; do
        if [ -n "$g" ] && [ -x "$g" ]; then
            printf '%s\n' "$g"
            return 0
        fi
    done
    return 1
}

devdb_binary() {  # prints the path of a built devdb, building it when the cache has none
    if [ -n "${DEVDB_BIN:-}" ]; then
        [ -x "$DEVDB_BIN" ] || { log "DEVDB_BIN=$DEVDB_BIN is not executable"; exit 1; }
        printf '%s\n' "$DEVDB_BIN"
        return 0
    fi
    local key bin go tmp
    key="$(cd "$DEVDB_SRC" && { sha256sum main.go go.mod go.sum build.sh; uname -m; } | sha256sum | cut -c1-16)"
    bin="$CACHE_DIR/devdb-$key"
    if [ -x "$bin" ]; then
        printf '%s\n' "$bin"
        return 0
    fi
    mkdir -p "$CACHE_DIR"
    # One build at a time per cache (two clones running `make infra` at once).
    exec 9>"$CACHE_DIR/devdb.lock"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if [ ! -x "$bin" ]; then
        go="$(find_go)" || { log "devdb needs the Go toolchain (go 1.24 or newer) and none was found"; exit 1; }
        log "building devdb with $("$go" version) -> $bin (first build downloads modules; a few minutes)"
        tmp="$bin.tmp.$$"
        if ! GO="$go" bash "$DEVDB_SRC/build.sh" "$tmp" >&2; then
            rm -f "$tmp"
            log "devdb build failed"
            exit 1
        fi
        mv -f "$tmp" "$bin"
    fi
    exec 9>&-
    printf '%s\n' "$bin"
}

if [ "$MONGO_SERVER" != auto ] && [ "$MONGO_SERVER" != devdb ]; then
    log "MONGO_SERVER must be auto, mongod or devdb (got $MONGO_SERVER)"
    exit 1
fi
bin="$(devdb_binary)"
if pid_alive "$DEVDB_PID" devdb; then
    log "devdb pid $(cat "$DEVDB_PID") runs but does not answer on $MONGO_HOST:$MONGO_PORT; stopping it"
    stop_pidfile "$DEVDB_PID" devdb
fi
mkdir -p "$STACK_DATA/ferretdb"
DEVDB_LOG="$LOG_DIR/devdb.log"
log "starting devdb (data $STACK_DATA/ferretdb, log $DEVDB_LOG)"
rm -f "$DEVDB_PID"
# setsid: own session, so it outlives this shell and make; the inner sh records its own pid
# and execs devdb, so the pid file holds devdb's pid.
nohup setsid sh -c 'echo $$ >"$0"; exec "$@"' "$DEVDB_PID" \
    "$bin" -listen "$LISTEN_HOST:$MONGO_PORT" -data "$STACK_DATA/ferretdb" \
    >>"$DEVDB_LOG" 2>&1 </dev/null &
for _ in $(seq 1 50); do [ -s "$DEVDB_PID" ] && break; sleep 0.1; done
[ -s "$DEVDB_PID" ] || { log "devdb did not start; see $DEVDB_LOG"; tail -n 30 "$DEVDB_LOG" >&2 || true; exit 1; }
wait_until_answers "$(cat "$DEVDB_PID")" "$DEVDB_LOG" devdb
echo "mongo: started devdb (pid $(cat "$DEVDB_PID"), $bin): $what on $MONGO_HOST:$MONGO_PORT"
