#!/usr/bin/env bash
# Debian's chromium for the browser tests (Playwright drives it; no browser download here).
set -euo pipefail
if command -v chromium >/dev/null; then
    exit 0
fi
echo "ensure_chromium: installing Debian's chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq chromium >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
}
command -v chromium >/dev/null
