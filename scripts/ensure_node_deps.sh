#!/usr/bin/env bash
# npm dependencies of the repo's JavaScript packages (the web client, the contract tools),
# installed with `npm ci` from each package-lock.json; skipped when node_modules is current.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v npm >/dev/null; then
    echo "ensure_node_deps: npm not found; installing Debian's nodejs and npm" >&2
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi

# Vite 7 (the web client's build) needs Node 20.19 or newer; Debian 12's own nodejs is 18.
node_version="$(node --version 2>/dev/null || echo v0.0.0)"
if ! printf '%s\n' "v20.19.0" "$node_version" | sort -V -C; then
    echo "ensure_node_deps: Node $node_version is too old; the web client's Vite needs 20.19 or" \
        "newer (e.g. from nodejs.org or NodeSource)" >&2
    exit 1
fi

for dir in tools/contracts clients/web; do
    [ -f "$dir/package-lock.json" ] || continue
    stamp="$dir/node_modules/.package-lock.json"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package-lock.json" ]; then
        continue
    fi
    echo "ensure_node_deps: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$stamp"
done
