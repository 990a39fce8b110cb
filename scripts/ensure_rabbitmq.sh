#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers AMQP at $AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/).
#
#   scripts/ensure_rabbitmq.sh          ensure it runs (no-op when something already answers)
#   scripts/ensure_rabbitmq.sh stop     stop the local Debian rabbitmq-server node
#
# Without Docker we use Debian's rabbitmq-server package: installed with apt-get when missing,
# started with `rabbitmq-server -detached` (no systemd needed), data and logs in Debian's
# default places (/var/lib/rabbitmq, /var/log/rabbitmq). The default guest/guest user may only
# connect from localhost, which is all we need.
set -euo pipefail

AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
# A node recovering many durable queues boots slowly on two cores; give it time.
START_TIMEOUT="${RABBITMQ_START_TIMEOUT:-180}"
# Queues of test and benchmark runs (their prefixes) that nobody has used for an hour are
# deleted by the broker: a run killed before its own cleanup leaves nothing behind for good.
THROWAWAY_QUEUES='^(test|bench)-'
THROWAWAY_EXPIRES_MS=3600000
# rabbitmq-server and rabbitmqctl live in /usr/sbin, which a non-login root shell may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf 'ensure_rabbitmq: %s\n' "$*" >&2; }

# Prints "host port" for AMQP_URL.
read -r AMQP_HOST AMQP_PORT < <(python3 - "$AMQP_URL" <<'PY'
import sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
default = 5671 if u.scheme == "amqps" else 5672
print(u.hostname or "127.0.0.1", u.port or default)
PY
) || { log "cannot parse AMQP_URL=$AMQP_URL"; exit 1; }

# Exit 0 when an AMQP 0-9-1 server answers the protocol header at host:port.
amqp_answers() {
    python3 - "$AMQP_HOST" "$AMQP_PORT" <<'PY'
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    with socket.create_connection((host, port), timeout=2) as s:
        s.settimeout(3)
        s.sendall(b"AMQP\x00\x00\x09\x01")
        data = b""
        while len(data) < 7:
            chunk = s.recv(7 - len(data))
            if not chunk:
                break
            data += chunk
except OSError:
    sys.exit(1)
# A method frame (type 1) on channel 0: connection.start.
sys.exit(0 if len(data) == 7 and data[0] == 1 and data[1:3] == b"\x00\x00" else 1)
PY
}

port_open() {
    python3 - "$AMQP_HOST" "$AMQP_PORT" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

is_local_host() {
    case "$1" in
        127.*|localhost|::1|0.0.0.0|"$(hostname)"|"$(hostname -f 2>/dev/null || hostname)") return 0 ;;
        *) return 1 ;;
    esac
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root (or sudo) to run: $*"
        return 1
    fi
}

if [ "${1:-}" = stop ]; then
    if ! command -v rabbitmqctl >/dev/null 2>&1; then
        log "rabbitmqctl not installed; nothing to stop"
        exit 0
    fi
    if as_root rabbitmqctl -q stop >/dev/null 2>&1; then
        log "rabbitmq stopped"
    else
        log "rabbitmq was not running (or could not be stopped by rabbitmqctl)"
    fi
    exit 0
fi

# Best effort: only possible on this machine's own node, with rabbitmqctl and root.
expire_throwaway_queues() {
    is_local_host "$AMQP_HOST" && command -v rabbitmqctl >/dev/null 2>&1 || return 0
    as_root timeout 30 rabbitmqctl -q set_policy --apply-to queues throwaway-run-queues \
        "$THROWAWAY_QUEUES" "{\"expires\":$THROWAWAY_EXPIRES_MS}" >/dev/null 2>&1 ||
        log "could not set the throwaway-queue expiry policy (not fatal)"
}

# Debian's wrapper switches to the rabbitmq user with `su`, which drops the file-handle limit
# to 1024; a node then recovers its queues a few at a time (it warned "Recovering 1122 queues,
# available file handles: 927" and did not finish in ten minutes). Raise it to the hard limit.
start_node() {
    local inner=/usr/lib/rabbitmq/bin/rabbitmq-server
    if [ "$(id -u)" = 0 ] && [ -x "$inner" ] && id rabbitmq >/dev/null 2>&1; then
        (cd /var/lib/rabbitmq &&
            su rabbitmq -s /bin/sh -c "ulimit -n \"\$(ulimit -Hn)\" 2>/dev/null; exec $inner -detached")
    else
        as_root rabbitmq-server -detached
    fi
}

if amqp_answers; then
    echo "rabbitmq: AMQP answers on $AMQP_HOST:$AMQP_PORT"
    expire_throwaway_queues
    exit 0
fi

if port_open; then
    log "something listens on $AMQP_HOST:$AMQP_PORT but does not speak AMQP 0-9-1; free the port or set AMQP_URL"
    exit 1
fi

if ! is_local_host "$AMQP_HOST"; then
    log "nothing answers at $AMQP_HOST:$AMQP_PORT and that is not this machine; start the broker there or fix AMQP_URL"
    exit 1
fi

if ! command -v rabbitmq-server >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        log "rabbitmq-server is not installed and there is no apt-get; install RabbitMQ yourself"
        exit 1
    fi
    log "installing Debian's rabbitmq-server (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq >&2
    as_root apt-get install -y -qq --no-install-recommends rabbitmq-server >&2
    # On hosts without a policy-rc.d the package starts the service itself.
    if amqp_answers; then
        echo "rabbitmq: AMQP answers on $AMQP_HOST:$AMQP_PORT (started by the package)"
        exit 0
    fi
fi

if [ "$AMQP_PORT" != 5672 ]; then
    export RABBITMQ_NODE_PORT="$AMQP_PORT"
fi

log "starting rabbitmq-server -detached (logs in /var/log/rabbitmq)"
start_node >&2 || true

deadline=$((SECONDS + START_TIMEOUT))
while ! amqp_answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        log "RabbitMQ did not answer on $AMQP_HOST:$AMQP_PORT within ${START_TIMEOUT}s; see /var/log/rabbitmq/"
        tail -n 20 /var/log/rabbitmq/*.log 2>/dev/null >&2 || true
        exit 1
    fi
    sleep 1
done

# The port opens before every boot step has finished; wait for the node itself.
remaining=$((deadline - SECONDS))
[ "$remaining" -ge 5 ] || remaining=5
if ! as_root timeout "$((remaining + 5))" rabbitmqctl -q await_startup --timeout "$remaining" >/dev/null 2>&1; then
    if ! as_root timeout 30 rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
        log "RabbitMQ answers AMQP but the node did not report it has started; see /var/log/rabbitmq/"
        exit 1
    fi
fi
expire_throwaway_queues
echo "rabbitmq: started, AMQP answers on $AMQP_HOST:$AMQP_PORT"
