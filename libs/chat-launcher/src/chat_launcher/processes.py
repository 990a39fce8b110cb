"""One service process: launched, probed for readiness, stopped."""

import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
# Probes talk to 127.0.0.1 directly, whatever HTTP_PROXY says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NotReady(RuntimeError):
    """A service exited, or did not answer /readyz in time; the message has its log tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def service_command(name: str, port: int, bin_dir: Path | None = None) -> list[str]:
    """The console script from this venv (or `bin_dir`), else `uv run --no-sync NAME`."""
    directory = bin_dir if bin_dir is not None else Path(sys.executable).parent
    script = directory / name
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "--port", str(port)]
    uv = shutil.which("uv")
    if uv is not None and bin_dir is None:
        return [uv, "run", "--no-sync", name, "--port", str(port)]
    raise FileNotFoundError(f"no console script {script}; run `make install`")


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when this process dies, even by
    SIGKILL, so a killed test run or benchmark leaves no service behind."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def is_ready(port: int, host: str = HOST) -> bool:
    try:
        with _opener.open(f"http://{host}:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return False


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    # Where its output goes; None when the caller reads `process.stdout` itself.
    log_path: Path | None = None
    ready: bool = False

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def send(self, signum: int) -> None:
        """To its process group when it leads one (a `uv run` wrapper's child included)."""
        try:
            if os.getpgid(self.process.pid) == self.process.pid:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """`sig`, then SIGKILL if it has not exited within `timeout` seconds."""
        stop_all([self], timeout, first=sig)


def launch(
    name: str,
    port: int,
    env: Mapping[str, str],
    *,
    command: Sequence[str] | None = None,
    log_path: Path | None = None,
    cwd: Path | None = None,
    own_group: bool = False,
) -> ServiceProcess:
    """Start one service (its console script unless `command` is given), output to
    `log_path` or, without one, to a pipe the caller reads. `own_group`: a process group of
    its own, so a terminal's Ctrl-C reaches only the launcher, which stops it in order."""
    argv = list(command) if command is not None else service_command(name, port)
    stdout = subprocess.PIPE if log_path is None else log_path.open("ab")
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            process_group=0 if own_group else None,
            preexec_fn=die_with_parent(),
        )
    finally:
        if log_path is not None:
            stdout.close()  # type: ignore[union-attr]
    return ServiceProcess(name, port, process, log_path)


def wait_ready(
    services: Sequence[ServiceProcess],
    timeout: float,
    *,
    on_ready: Callable[[ServiceProcess], None] | None = None,
    interval: float = 0.1,
) -> None:
    """Until every service answers /readyz 200; NotReady when one exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        for service in services:
            if service.ready:
                continue
            if not service.running:
                raise NotReady(
                    f"{service.name} exited with {service.process.returncode}:\n"
                    f"{service.log_tail()}"
                )
            if is_ready(service.port):
                service.ready = True
                if on_ready is not None:
                    on_ready(service)
        waiting = [s for s in services if not s.ready]
        if not waiting:
            return
        if time.monotonic() > deadline:
            names = ", ".join(s.name for s in waiting)
            tails = "\n".join(f"--- {s.name}:\n{s.log_tail()}" for s in waiting)
            raise NotReady(f"not ready after {timeout:g}s: {names}\n{tails}")
        time.sleep(interval)


def stop_all(
    services: Sequence[ServiceProcess],
    grace: float,
    *,
    first: int = signal.SIGTERM,
    hurry: Callable[[], bool] = lambda: False,
    on_kill: Callable[[ServiceProcess], None] | None = None,
) -> None:
    """Signal all at once (in the given order), wait up to `grace` seconds (less once
    `hurry` says so), SIGKILL whatever still runs, and reap every one."""
    for service in services:
        if service.running:
            service.send(first)
    deadline = time.monotonic() + grace
    while any(s.running for s in services) and time.monotonic() < deadline and not hurry():
        time.sleep(0.05)
    for service in services:
        if service.running:
            if on_kill is not None:
                on_kill(service)
            service.send(signal.SIGKILL)
    for service in services:
        service.process.wait()
