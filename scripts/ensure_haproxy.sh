#!/usr/bin/env bash
# Make sure HAProxy (Debian's package) is installed; `make run-cluster` puts it in front.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

if command -v haproxy >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_haproxy: haproxy is not installed and there is no apt-get; install HAProxy" >&2
    exit 1
fi
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}
echo "ensure_haproxy: installing Debian's haproxy (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq >&2
as_root apt-get install -y -qq --no-install-recommends haproxy >&2
# The package may start its own service with /etc/haproxy/haproxy.cfg (no frontends on our
# ports); run-cluster runs its own haproxy process with its own configuration.
