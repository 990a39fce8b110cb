"""Starts the real services as separate processes, each test session on its own names.

Every session gets a fresh database name and broker prefix, so runs never share state, and
every service process is the same console script a person runs (`ws-edge`, `presence`, ...).
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chat_core.broker import Topology
from tests.support.cleanup import remove_run_blocking

BIN = Path(sys.executable).parent
SERVICE_PORT_ENV = {"ws-edge": 8000, "messaging": 8001, "presence": 8002}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_names() -> tuple[str, str]:
    """A fresh database name and broker prefix."""
    run_id = uuid.uuid4().hex[:10]
    return f"test_{run_id}", f"test-{run_id}"


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


@dataclass
class Stack:
    amqp_url: str
    mongo_url: str
    log_dir: Path
    names: tuple[str, str] = field(default_factory=run_names)
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[ServiceProcess] = field(default_factory=list)

    @property
    def db_name(self) -> str:
        return self.names[0]

    @property
    def broker_prefix(self) -> str:
        return self.names[1]

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            AMQP_URL=self.amqp_url,
            MONGO_URL=self.mongo_url,
            MONGO_DB=self.db_name,
            BROKER_PREFIX=self.broker_prefix,
            AUTH_MODE="dev",
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def start(self, name: str, port: int | None = None, **env: str) -> ServiceProcess:
        port = port or free_port()
        label = env.get("EDGE_ID", name)
        log_path = self.log_dir / f"{label}-{port}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [str(BIN / name), "--port", str(port)],
                env=self.env(**env),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        service = ServiceProcess(name, port, process, log_path)
        self.processes.append(service)
        wait_ready(service)
        return service

    def run_admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "chat-admin"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def stop_all(self) -> None:
        for service in reversed(self.processes):
            service.stop()

    def close(self) -> None:
        """Stops every process, then deletes this run's broker topology and database."""
        self.stop_all()
        self.remove_state()

    def remove_state(self) -> None:
        partitions = int(self.env().get("BROKER_PARTITIONS", "0") or 0)
        topology = Topology(self.broker_prefix, partitions=partitions)
        remove_run_blocking(self.amqp_url, self.mongo_url, topology, self.db_name)


def wait_ready(service: ServiceProcess, timeout: float = 90.0) -> None:
    # Generous: on a 2-core machine shared with other suites a service can take 30 s to start.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited early:\n{service.log_text()[-4000:]}")
        try:
            if httpx.get(f"{service.http_url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"{service.name} not ready in {timeout}s:\n{service.log_text()[-4000:]}")
