#!/usr/bin/env bash
# Print the path of a Centrifugo v6.9.1 binary, building it first when the cache has none.
#
#   scripts/ensure_centrifugo.sh            build when missing, then print the path
#   scripts/ensure_centrifugo.sh --cached   print the path if it is already built; exit 3 otherwise
#
# Used by `chat-bench compare` (docs/performance.md, "Side by side with Centrifugo"). The binary is
# built from the Go module proxy with `go install` into the same cache as the devdb build
# (${XDG_CACHE_HOME:-$HOME/.cache}/chat-backend/centrifugo-v6.9.1/); nothing is vendored.
# CENTRIFUGO_BIN=/path/to/centrifugo uses that binary instead.
set -euo pipefail

VERSION="v6.9.1"
MODULE="github.com/centrifugal/centrifugo/v6"
if [ -z "${HOME:-}" ]; then
    HOME="$(getent passwd "$(id -u)" | cut -d: -f6)"
    export HOME
fi
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/chat-backend"
BIN_DIR="$CACHE_DIR/centrifugo-$VERSION"
BIN="$BIN_DIR/centrifugo"

log() { printf 'ensure_centrifugo: %s\n' "$*" >&2; }

if [ -n "${CENTRIFUGO_BIN:-}" ]; then
    [ -x "$CENTRIFUGO_BIN" ] || { log "CENTRIFUGO_BIN=$CENTRIFUGO_BIN is not executable"; exit 1; }
    printf '%s\n' "$CENTRIFUGO_BIN"
    exit 0
fi
if [ -x "$BIN" ]; then
    printf '%s\n' "$BIN"
    exit 0
fi
if [ "${1:-}" = --cached ]; then
    log "no cached build at $BIN"
    exit 3
fi

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

mkdir -p "$CACHE_DIR"
# One build at a time per cache (two benches starting at once).
exec 9>"$CACHE_DIR/centrifugo-$VERSION.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if [ ! -x "$BIN" ]; then
    go="$(find_go)" || { log "Centrifugo is built with Go (1.24 or newer) and no go was found"; exit 1; }
    log "building Centrifugo $VERSION with $("$go" version) -> $BIN (first build downloads modules; several minutes)"
    # Build into a scratch GOBIN and move the binary in place, so a half-written file is never cached.
    tmp="$(mktemp -d "$CACHE_DIR/centrifugo-build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    # GOTOOLCHAIN=auto lets an older go fetch the toolchain that Centrifugo's go.mod asks for.
    if ! GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -trimpath" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" \
        "$go" install "$MODULE@$VERSION" >&2; then
        log "Centrifugo build failed"
        exit 1
    fi
    mkdir -p "$BIN_DIR"
    mv -f "$tmp/centrifugo" "$BIN"
fi
exec 9>&-
printf '%s\n' "$BIN"
