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

Standard library only (serve_web.py, a separate process, uses the venv's Starlette).
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SERVICES: tuple[tuple[str, int], ...] = (("ws-edge", 8000), ("messaging", 8001), ("presence", 8002))
WEB_PORT = 8080  # the browser client (scripts/serve_web.py), configured for the ports above
COLORS = ("\033[36m", "\033[35m", "\033[33m", "\033[32m")
RESET = "\033[0m"

_output_lock = threading.Lock()
# Readiness probes talk to 127.0.0.1 directly, whatever HTTP_PROXY says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def emit(line: str, stream: IO[str] | None = None) -> None:
    out = stream or sys.stdout
    with _output_lock:
        out.write(line + "\n")
        out.flush()


def say(message: str) -> None:
    emit(f"run_stack | {message}")


@dataclass
class Child:
    name: str
    port: int
    command: list[str]
    prefix: str
    process: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = None
    ready: bool = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def redact(url: str) -> str:
    """Hide the password of a URL such as amqp://user:secret@host/."""
    return re.sub(r"(//[^:/@]+:)[^@/]*@", r"\1***@", url)


def service_command(name: str, port: int, bin_dir: Path | None) -> list[str]:
    """The console script from the venv that runs this script, else `uv run --no-sync NAME`."""
    directory = bin_dir if bin_dir is not None else Path(sys.executable).parent
    script = directory / name
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "--port", str(port)]
    uv = shutil.which("uv")
    if uv is not None and bin_dir is None:
        return [uv, "run", "--no-sync", name, "--port", str(port)]
    raise SystemExit(
        f"run_stack: no console script {script}; run `make install` (uv sync --all-packages)"
    )


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


def is_ready(port: int) -> bool:
    try:
        with _opener.open(f"http://{HOST}:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return False


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child if this process dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def pump_output(child: Child, stream: IO[bytes] | None) -> None:
    if stream is None:
        return
    for raw in iter(stream.readline, b""):
        emit(f"{child.prefix} | {raw.decode(errors='replace').rstrip()}")
    stream.close()


def start(children: Sequence[Child], env: dict[str, str]) -> None:
    preexec = _die_with_parent(os.getpid())
    streams: list[IO[bytes] | None] = []
    for child in children:
        say(f"starting {child.name}: {' '.join(child.command)}")
        child.process = process = subprocess.Popen(
            child.command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,  # Ctrl-C reaches only us; we stop the children in order
            preexec_fn=preexec,
        )
        streams.append(process.stdout)
    # Reader threads only after every fork (preexec_fn and threads do not mix well).
    for child, stream in zip(children, streams, strict=True):
        child.pump = threading.Thread(target=pump_output, args=(child, stream), daemon=True)
        child.pump.start()


def signal_group(child: Child, signum: signal.Signals) -> None:
    if child.process is None:
        return
    try:
        os.killpg(child.process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all(children: Sequence[Child], grace: float, hurry: Callable[[], bool]) -> None:
    alive = [c for c in children if c.running]
    if alive:
        say(f"stopping {', '.join(c.name for c in alive)} (SIGTERM, SIGKILL after {grace:g}s)")
    for child in children:
        signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(c.running for c in children) and time.monotonic() < deadline and not hurry():
        time.sleep(0.1)
    for child in children:
        if child.running:
            say(f"{child.name} did not stop in time; SIGKILL")
        signal_group(child, signal.SIGKILL)
    for child in children:
        if child.process is not None:
            child.process.wait()
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

    signals: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only record it: the handler runs between bytecodes of the main thread, and taking a
        # lock the main thread may hold (threading.Event.set inside Event.wait) deadlocks.
        signals.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    def hurry() -> bool:
        return len(signals) > 1  # a second Ctrl-C: do not wait for the grace period

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

    say(f"received {signal.Signals(signals[0]).name}")
    stop_all(children, args.grace, hurry)
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
