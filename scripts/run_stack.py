"""Run the whole chat stack on this machine: ws-edge, messaging, presence and the web client.

Usage (from the repository root; `make run` does this after `make install infra`):

    uv run python scripts/run_stack.py [--ready-timeout SECONDS] [--grace SECONDS]

RabbitMQ and MongoDB must already answer (`make infra`). Each service runs as a child process
through its console script (the same program as `uv run ws-edge --port 8000`), its output lines
prefixed with its name; the browser client (clients/web/dist, built by `make web`) is served on
:8080 by scripts/serve_web.py, configured for these ports. Once every `/readyz` answers 200
one line "stack ready: ..." is printed. Ctrl-C or SIGTERM stops every child (SIGTERM, then
SIGKILL after the grace period); if a child dies on its own the others are stopped and the exit
status is non-zero.

Processes are started, probed and stopped by chat_launcher (libs/chat-launcher), the same
code the tests and chat-bench use; run it with this venv's Python (`uv run`).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from chat_launcher import HOST, ServiceProcess, is_ready, launch
from chat_launcher import service_command as launcher_command
from chat_launcher import stop_all as stop_processes

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES: tuple[tuple[str, int], ...] = (("ws-edge", 8000), ("messaging", 8001), ("presence", 8002))
WEB_PORT = 8080  # the browser client (scripts/serve_web.py), configured for the ports above
COLORS = ("\033[36m", "\033[35m", "\033[33m", "\033[32m")
RESET = "\033[0m"

_output_lock = threading.Lock()


def emit(line: str, stream: IO[str] | None = None) -> None:
    out = stream or sys.stdout
    with _output_lock:
        out.write(line + "\n")
        out.flush()


def say(message: str) -> None:
    emit(f"run_stack | {message}")


@dataclass
class Child:
    """One line of the stack: what to run, its output prefix, and the process once started."""

    name: str
    port: int
    command: list[str]
    prefix: str
    service: ServiceProcess | None = None
    pump: threading.Thread | None = None
    ready: bool = False

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.service is None else self.service.process

    @property
    def running(self) -> bool:
        return self.service is not None and self.service.running


def redact(url: str) -> str:
    """Hide the password of a URL such as amqp://user:secret@host/."""
    return re.sub(r"(//[^:/@]+:)[^@/]*@", r"\1***@", url)


def service_command(name: str, port: int, bin_dir: Path | None) -> list[str]:
    try:
        return launcher_command(name, port, bin_dir)
    except FileNotFoundError as missing:
        raise SystemExit(f"run_stack: {missing}") from None


def web_command() -> list[str]:
    ports = dict(SERVICES)
    return [
        sys.executable,
        str(REPO_ROOT / "scripts" / "serve_web.py"),
        "--port",
        str(WEB_PORT),
        "--ws-url",
        f"ws://{HOST}:{ports['ws-edge']}",
        "--messaging-url",
        f"http://{HOST}:{ports['messaging']}",
        "--presence-url",
        f"http://{HOST}:{ports['presence']}",
    ]


def port_in_use(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def pump_output(child: Child, stream: IO[bytes] | None) -> None:
    if stream is None:
        return
    for raw in iter(stream.readline, b""):
        emit(f"{child.prefix} | {raw.decode(errors='replace').rstrip()}")
    stream.close()


def start(children: Sequence[Child], env: dict[str, str]) -> None:
    for child in children:
        say(f"starting {child.name}: {' '.join(child.command)}")
        # Its own process group: Ctrl-C reaches only us, and we stop the children in order.
        child.service = launch(
            child.name, child.port, env, command=child.command, cwd=REPO_ROOT, own_group=True
        )
    # Reader threads only after every fork (preexec_fn and threads do not mix well).
    for child in children:
        assert child.service is not None
        stream = child.service.process.stdout
        child.pump = threading.Thread(target=pump_output, args=(child, stream), daemon=True)
        child.pump.start()


# A terminal's Ctrl-C reaches a stack runner twice at once: directly (it is in the foreground
# process group) and forwarded by the `uv run` wrapper that started it. Only a signal this
# long after the first is a second press, meaning "do not wait for the grace period".
AGAIN_AFTER_SECONDS = 0.5


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP, recorded with when they came."""

    def __init__(self) -> None:
        self.received: list[tuple[int, float]] = []

    @classmethod
    def install(cls) -> StopSignals:
        signals = cls()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signals.record)
        return signals

    def record(self, signum: int, _frame: FrameType | None = None) -> None:
        # Only record it: the handler runs between bytecodes of the main thread, and taking a
        # lock the main thread may hold (threading.Event.set inside Event.wait) deadlocks.
        self.received.append((signum, time.monotonic()))

    def __bool__(self) -> bool:
        return bool(self.received)

    @property
    def first(self) -> str:
        return signal.Signals(self.received[0][0]).name

    def hurry(self) -> bool:
        """A second signal, not the same one delivered twice."""
        if not self.received:
            return False
        first_at = self.received[0][1]
        return any(at - first_at >= AGAIN_AFTER_SECONDS for _signum, at in self.received[1:])


def stop_all(children: Sequence[Child], grace: float, hurry: Callable[[], bool]) -> None:
    alive = [c for c in children if c.running]
    if alive:
        say(f"stopping {', '.join(c.name for c in alive)} (SIGTERM, SIGKILL after {grace:g}s)")
    services = [c.service for c in children if c.service is not None]

    def killing(service: ServiceProcess) -> None:
        say(f"{service.name} did not stop in time; SIGKILL")

    stop_processes(services, grace, hurry=hurry, on_kill=killing)
    for child in children:
        if child.pump is not None:
            child.pump.join(timeout=2)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=float(os.environ.get("STACK_READY_TIMEOUT", "90")),
        help="seconds to wait for every /readyz (default 90)",
    )
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL (10)"
    )
    parser.add_argument(
        "--bin-dir",
        type=Path,
        default=None,
        help="directory with the ws-edge/messaging/presence scripts (default: this venv's)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    env = dict(os.environ)
    env.setdefault("AUTH_MODE", "dev")
    stack_data = Path(env.get("STACK_DATA", ".data"))
    env["STACK_DATA"] = str(stack_data if stack_data.is_absolute() else REPO_ROOT / stack_data)
    env["PYTHONUNBUFFERED"] = "1"

    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    width = max(len(name) for name, _ in SERVICES)
    children = []
    for index, (name, port) in enumerate(SERVICES):
        prefix = f"{name:<{width}}"
        if color:
            prefix = f"{COLORS[index % len(COLORS)]}{prefix}{RESET}"
        children.append(Child(name, port, service_command(name, port, args.bin_dir), prefix))
    children.append(Child("web", WEB_PORT, web_command(), f"{'web':<{width}}"))

    busy = [f"{c.name} ({c.port})" for c in children if port_in_use(c.port)]
    if busy:
        emit(
            f"run_stack: port already in use: {', '.join(busy)}; is another stack running?",
            sys.stderr,
        )
        return 1

    say(
        f"AUTH_MODE={env['AUTH_MODE']} AMQP_URL={redact(env.get('AMQP_URL', '(default)'))} "
        f"MONGO_URL={redact(env.get('MONGO_URL', '(default)'))} STACK_DATA={env['STACK_DATA']}"
    )

    signals = StopSignals.install()
    hurry = signals.hurry

    start(children, env)
    deadline = time.monotonic() + args.ready_timeout
    announced = False
    while not signals:
        dead = next((c for c in children if not c.running), None)
        if dead is not None:
            assert dead.process is not None
            code = dead.process.returncode
            say(f"{dead.name} exited unexpectedly (status {code}); stopping the others")
            stop_all(children, args.grace, hurry)
            return code if code and code > 0 else 1
        if not announced:
            for child in children:
                if not child.ready and is_ready(child.port):
                    child.ready = True
                    say(f"{child.name} ready on port {child.port}")
            if all(c.ready for c in children):
                announced = True
                urls = {c.name: f"http://{HOST}:{c.port}" for c in children}
                emit(
                    f"stack ready: ws-edge {urls['ws-edge']} "
                    f"(ws://{HOST}:{children[0].port}/ws/{{user_id}}?token=...), "
                    f"messaging {urls['messaging']}, presence {urls['presence']}, "
                    f"web client {urls['web']}/ (Ctrl-C stops)"
                )
            elif time.monotonic() > deadline:
                waiting = ", ".join(c.name for c in children if not c.ready)
                say(f"not ready after {args.ready_timeout:g}s: {waiting} (GET /readyz != 200)")
                stop_all(children, args.grace, hurry)
                return 1
        time.sleep(0.5 if announced else 0.25)

    say(f"received {signals.first}")
    stop_all(children, args.grace, hurry)
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
