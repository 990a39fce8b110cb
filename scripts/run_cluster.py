"""Run the stack scaled out on this machine: a 3-node RabbitMQ cluster, two of each service,
and HAProxy in front on the usual ports.

Usage (from the repository root; `make run-cluster` does this after `make install infra`):

    uv run python scripts/run_cluster.py [--ready-timeout SECONDS] [--grace SECONDS]

    RabbitMQ   rabbit-1..3@localhost, AMQP 5681-5683, distribution 25681-25683, data under
               $STACK_DATA/rabbit-cluster (scripts/rabbit_cluster.py); quorum queues
    ws-edge    8010, 8011      behind HAProxy on 8000 (least connections)
    messaging  8021, 8022      behind HAProxy on 8001 (round robin)
    presence   8031, 8032      behind HAProxy on 8002 (round robin)
    web client 8080            scripts/serve_web.py, as in `make run` (clients/web/dist)
    internal   9010 ... 9032   each instance's ADMIN_PORT (its port + 1000): /metrics,
                               /stats, /docs, /openapi.json; HAProxy refuses those paths

HAProxy checks GET /readyz every second, adds X-Forwarded-For (the services trust it from
127.0.0.1: TRUSTED_PROXIES, and uvicorn's own forwarded-allow-ips default), and keeps an
upgraded WebSocket open for an hour of silence (clients heartbeat every 30 s). MongoDB is
the one of `make infra` (MONGO_URL). Ctrl-C stops the services, HAProxy, then the nodes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_stack  # a sibling script, not a package
from rabbit_cluster import RabbitCluster
from run_stack import HOST, REPO_ROOT, Child, StopSignals, emit, is_ready, port_in_use, say

from chat_core.internal import haproxy_deny_rule

# (service, port behind HAProxy, instance ports)
SERVICES: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("ws-edge", 8000, (8010, 8011)),
    ("messaging", 8001, (8021, 8022)),
    ("presence", 8002, (8031, 8032)),
)
WEB_PORT = 8080
PARTITIONS = 4
ADMIN_PORT_OFFSET = 1000


def admin_port(port: int) -> int:
    return port + ADMIN_PORT_OFFSET


def haproxy_config() -> str:
    lines = [
        "global",
        # No maxconn: HAProxy derives it from the open-file limit it is given (production
        # sets both: two sockets per proxied connection).
        "    log stdout format raw local0 notice",
        "defaults",
        "    mode http",
        "    log global",
        "    option forwardfor",
        "    option redispatch",
        "    retries 2",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        # An upgraded WebSocket is a tunnel: this, not client/server, bounds its silence.
        "    timeout tunnel 1h",
        "    timeout client-fin 5s",
    ]
    for name, front, backends in SERVICES:
        balance = "leastconn" if name == "ws-edge" else "roundrobin"
        lines += [
            f"frontend {name}",
            f"    bind {HOST}:{front}",
            f"    {haproxy_deny_rule()}",
            f"    default_backend {name}-servers",
            f"backend {name}-servers",
            f"    balance {balance}",
            "    option httpchk GET /readyz",
            "    http-check expect status 200",
            *(
                f"    server {name}-{port} {HOST}:{port} check inter 1s fall 2 rise 2"
                for port in backends
            ),
        ]
    return "\n".join(lines) + "\n"


def web_root() -> Path | None:
    for candidate in ("dist", "build"):
        root = REPO_ROOT / "clients" / "web" / candidate
        if (root / "index.html").is_file():
            return root
    return None


def build_children(bin_dir: Path | None, haproxy_cfg: Path) -> list[Child]:
    children = [Child("haproxy", 8000, ["haproxy", "-db", "-f", str(haproxy_cfg)], "haproxy  ")]
    for name, _front, ports in SERVICES:
        for index, port in enumerate(ports, start=1):
            own = [f"ADMIN_PORT={admin_port(port)}"]
            if name == "ws-edge":
                own.append(f"EDGE_ID=edge-{port}")
            command = ["env", *own, *run_stack.service_command(name, port, bin_dir)]
            children.append(Child(f"{name}-{index}", port, command, f"{name}-{index}".ljust(11)))
    if web_root() is not None:
        # The same server `make run` uses (scripts/serve_web.py), pointed at 8000-8002,
        # which HAProxy holds here.
        children.append(Child("web", WEB_PORT, run_stack.web_command(), "web".ljust(11)))
    return children


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--bin-dir", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stack_data = Path(os.environ.get("STACK_DATA", ".data"))
    stack_data = stack_data if stack_data.is_absolute() else REPO_ROOT / stack_data
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "ensure_haproxy.sh")], check=True)

    instances = [p for _n, _f, ports in SERVICES for p in ports]
    fixed = [8000, 8001, 8002, WEB_PORT, *instances, *map(admin_port, instances)]
    busy = [str(port) for port in fixed if port_in_use(port)]
    if busy:
        emit(f"run_cluster: port already in use: {', '.join(busy)}", sys.stderr)
        return 1

    signals = StopSignals.install()

    cluster = RabbitCluster(stack_data / "rabbit-cluster")
    say("starting RabbitMQ rabbit-1..3@localhost (AMQP 5681-5683)")
    cluster.start()
    haproxy_dir = stack_data / "haproxy"
    haproxy_dir.mkdir(parents=True, exist_ok=True)
    haproxy_cfg = haproxy_dir / "haproxy.cfg"
    haproxy_cfg.write_text(haproxy_config())

    env = dict(os.environ)
    env.setdefault("AUTH_MODE", "dev")
    env.update(
        STACK_DATA=str(stack_data),
        PYTHONUNBUFFERED="1",
        AMQP_URLS=",".join(cluster.urls),
        AMQP_URL=cluster.urls[0],
        BROKER_QUEUE_TYPE="quorum",
        BROKER_PARTITIONS=str(PARTITIONS),
        TRUSTED_PROXIES=env.get("TRUSTED_PROXIES", "127.0.0.1"),
    )
    children = build_children(args.bin_dir, haproxy_cfg)
    code = 0

    hurry = signals.hurry

    try:
        run_stack.start(children, env)
        deadline = time.monotonic() + args.ready_timeout
        announced = False
        while not signals:
            dead = next((c for c in children if not c.running), None)
            if dead is not None:
                assert dead.process is not None
                say(f"{dead.name} exited (status {dead.process.returncode}); stopping")
                code = 1
                break
            if not announced:
                checked = [c for c in children if c.name not in ("haproxy", "web")]
                if all(is_ready(c.port) for c in checked) and all(
                    is_ready(front) for _n, front, _p in SERVICES
                ):
                    announced = True
                    web = f", web http://{HOST}:{WEB_PORT}/" if web_root() else ""
                    emit(
                        f"cluster ready: ws://{HOST}:8000/ws/{{user_id}}?token=..., "
                        f"messaging http://{HOST}:8001, presence http://{HOST}:8002{web} "
                        f"(HAProxy in front of 2 of each; RabbitMQ {', '.join(cluster.urls)}; "
                        f"metrics on :{admin_port(8010)}/metrics and the like; Ctrl-C stops)"
                    )
                elif time.monotonic() > deadline:
                    say(f"not ready after {args.ready_timeout:g}s; stopping")
                    code = 1
                    break
            time.sleep(0.5)
        if signals:
            say(f"received {signals.first}")
    finally:
        run_stack.stop_all(children, args.grace, hurry)
        say("stopping RabbitMQ nodes")
        cluster.stop()
        say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
