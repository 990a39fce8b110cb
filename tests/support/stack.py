"""Starts the real services as separate processes, each test session on its own names.

Every session gets a fresh database name and broker prefix, so runs never share state, and
every service process is the same console script a person runs (`ws-edge`, `presence`, ...).
"""

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from chat_launcher import NotReady, ServiceProcess, free_port, launch, wait_ready

from chat_core.broker import Topology
from tests.support.cleanup import remove_run_blocking

BIN = Path(sys.executable).parent
SERVICE_PORT_ENV = {"ws-edge": 8000, "messaging": 8001, "presence": 8002}
READY_TIMEOUT_SECONDS = 90.0

__all__ = ["ServiceProcess", "Stack", "free_port", "run_names"]


def run_names() -> tuple[str, str]:
    """A fresh database name and broker prefix."""
    run_id = uuid.uuid4().hex[:10]
    return f"test_{run_id}", f"test-{run_id}"


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
        service = launch(
            name,
            port,
            self.env(**env),
            command=[str(BIN / name), "--port", str(port)],
            log_path=self.log_dir / f"{label}-{port}.log",
        )
        self.processes.append(service)
        try:
            # Generous: on a 2-core machine shared with other suites a service can take 30 s.
            wait_ready([service], READY_TIMEOUT_SECONDS)
        except NotReady as error:
            # The fixtures' own wording, which tests match on ("exited early"), then the
            # launcher's account with the log's tail.
            early = not service.running
            service.stop()
            reason = "exited early" if early else f"not ready in {READY_TIMEOUT_SECONDS:g}s"
            raise RuntimeError(f"{service.name} {reason}: {error}") from None
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
