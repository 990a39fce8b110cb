"""Where the stack under test is: given URLs, a stack already on the default ports, or one
that chat-bench starts itself from a venv's console scripts (this one, or another checkout's
for `chat-bench regress`), on a fresh database and broker prefix, stopped and removed at the
end. RabbitMQ and MongoDB must already be up (`make infra`)."""

import asyncio
import contextlib
import ipaddress
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import aiohttp
from chat_launcher import NotReady, ServiceProcess, free_port, launch, stop_all, wait_ready
from pymongo import AsyncMongoClient

from chat_bench.progress import Progress

SERVICES = ("ws-edge", "messaging", "presence")
DEFAULT_PORTS = {"ws-edge": 8000, "messaging": 8001, "presence": 8002}
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class StackError(Exception):
    """The stack cannot be found, started or reached; the message says what to do."""


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname
    if host is None:
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_loopback(what: str, url: str) -> None:
    if not is_loopback(url):
        raise StackError(
            f"{what} {url!r} is not a loopback address; chat-bench only drives a "
            "stack on this machine"
        )


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


@dataclass(frozen=True)
class Endpoints:
    edge: str
    messaging: str
    presence: str
    # The database the services use: only the growth scenario's seeding writes to it.
    mongo_db: str = "chat"

    @property
    def edge_ws(self) -> str:
        parts = urlsplit(self.edge)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}"

    def by_service(self) -> dict[str, str]:
        return {"ws-edge": self.edge, "messaging": self.messaging, "presence": self.presence}


def default_endpoints() -> Endpoints:
    edge, messaging, presence = (f"http://127.0.0.1:{DEFAULT_PORTS[name]}" for name in SERVICES)
    return Endpoints(edge, messaging, presence, os.environ.get("MONGO_DB", "chat"))


async def readiness(url: str) -> int | None:
    """The /readyz status, or None when nothing answers."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http,
            http.get(f"{url}/readyz") as response,
        ):
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return None


def _tcp_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def check_infrastructure(amqp_url: str, mongo_url: str) -> None:
    for what, url, port in (("RabbitMQ", amqp_url, 5672), ("MongoDB", mongo_url, 27017)):
        require_loopback(what, url)
        host, found_port = host_port(url, port)
        if not _tcp_answers(host, found_port):
            raise StackError(
                f"{what} does not answer at {host}:{found_port}; start the infrastructure "
                "first (`make infra`), or use `make bench`"
            )


def this_venv() -> Path:
    return Path(sys.executable).parent


def has_migrate(bin_dir: Path) -> bool:
    """Whether this checkout's store wants `chat-admin migrate` before its services start
    (newer ones refuse an unmigrated database; older ones have no such command)."""
    admin = bin_dir / "chat-admin"
    if not admin.is_file():
        return False
    done = subprocess.run(
        [str(admin), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    return "migrate" in done.stdout


@dataclass
class OwnedStack:
    """ws-edge, messaging and presence as child processes, on free loopback ports, from the
    console scripts in `bin_dir`."""

    amqp_url: str
    mongo_url: str
    env_overrides: Mapping[str, str]
    progress: Progress
    bin_dir: Path = field(default_factory=this_venv)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chat-bench-")))
    children: list[ServiceProcess] = field(default_factory=list)

    @property
    def db_name(self) -> str:
        return f"bench_{self.run_id}"

    @property
    def broker_prefix(self) -> str:
        return f"bench-{self.run_id}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            AMQP_URL=self.amqp_url,
            MONGO_URL=self.mongo_url,
            MONGO_DB=self.db_name,
            BROKER_PREFIX=self.broker_prefix,
            AUTH_MODE="dev",
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        # No load balancer in front of a bench stack: an edge stops without a drain period.
        env.setdefault("DRAIN_SECONDS", "0")
        env.update(self.env_overrides)
        return env

    def description(self) -> dict[str, object]:
        return {
            "owned": True,
            "mongo_db": self.db_name,
            "broker_prefix": self.broker_prefix,
            "env": dict(self.env_overrides),
            "logs": str(self.log_dir),
            "pids": {c.name: c.process.pid for c in self.children},
        }

    async def start(self, ready_timeout: float) -> Endpoints:
        env = self.env()
        if await asyncio.to_thread(has_migrate, self.bin_dir):
            await self._migrate(env)
        for name in SERVICES:
            script = self.bin_dir / name
            if not script.is_file():
                raise StackError(f"no console script {script}; run `make install`")
            port = free_port()
            self.children.append(
                launch(
                    name,
                    port,
                    env,
                    command=[str(script), "--port", str(port)],
                    log_path=self.log_dir / f"{name}.log",
                )
            )
        try:
            await asyncio.to_thread(wait_ready, self.children, ready_timeout)
        except NotReady as error:
            raise StackError(f"{error}\n(logs {self.log_dir})") from None
        by_name = {c.name: c.http_url for c in self.children}
        if self.env_overrides:
            settings = " ".join(f"{k}={v}" for k, v in sorted(self.env_overrides.items()))
            self.progress.say(f"stack settings: {settings}")
        self.progress.say(
            f"started the stack ({', '.join(f'{n} {u}' for n, u in by_name.items())}; "
            f"db {self.db_name}, logs {self.log_dir})"
        )
        return Endpoints(
            by_name["ws-edge"], by_name["messaging"], by_name["presence"], self.db_name
        )

    async def _migrate(self, env: dict[str, str]) -> None:
        done = await asyncio.to_thread(
            subprocess.run,
            [str(self.bin_dir / "chat-admin"), "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(f"chat-admin migrate failed: {done.stderr[-2000:]}")

    async def stop(self, grace: float = 10.0) -> None:
        """The edge first, so its conn.closed events still find presence running."""
        for child in self.children:
            await asyncio.to_thread(
                stop_all,
                [child],
                grace,
                on_kill=lambda c: self.progress.say(
                    f"{c.name} did not stop in {grace:g}s; killing it"
                ),
            )
        await self._remove_state()

    async def _remove_state(self) -> None:
        """Its durable queues would outlive the run (and slow every broker boot after it)."""
        try:
            await remove_broker_state(self.amqp_url, self.broker_prefix)
            client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(self.mongo_url)
            try:
                await client.drop_database(self.db_name)
            finally:
                await client.close()
        except Exception as exc:
            self.progress.say(f"could not remove {self.broker_prefix} / {self.db_name}: {exc}")


def _broker_names(kind: str, prefix: str) -> list[str]:
    """Queues or exchanges named `<prefix>.*`, listed by rabbitmqctl: whatever the checkout
    that declared them called them (an old commit's topology is not this one's)."""
    done = subprocess.run(
        ["rabbitmqctl", "-q", f"list_{kind}", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [n for n in done.stdout.split() if n.startswith(f"{prefix}.")]


async def remove_broker_state(amqp_url: str, prefix: str) -> None:
    queues = await asyncio.to_thread(_broker_names, "queues", prefix)
    exchanges = await asyncio.to_thread(_broker_names, "exchanges", prefix)
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@dataclass
class StackChoice:
    """How the stack is found for each scenario (decided once per run)."""

    endpoints: Endpoints | None  # None: start one per scenario
    amqp_url: str
    mongo_url: str
    env_overrides: dict[str, str]
    ready_timeout: float
    progress: Progress

    @contextlib.asynccontextmanager
    async def stack_for(
        self, scenario_env: Mapping[str, str]
    ) -> AsyncIterator[tuple[Endpoints, OwnedStack | None]]:
        """A fresh stack per scenario when owned: no scenario inherits another's backlog,
        heap or presence churn, and the edge's RSS is that of this scenario alone."""
        if self.endpoints is not None:
            yield self.endpoints, None
            return
        owned = OwnedStack(
            self.amqp_url,
            self.mongo_url,
            {**scenario_env, **self.env_overrides},
            self.progress,
        )
        try:
            endpoints = await owned.start(self.ready_timeout)
            yield endpoints, owned
        finally:
            await owned.stop()


async def choose_stack(
    given: Endpoints | None,
    *,
    force_start: bool,
    amqp_url: str,
    mongo_url: str,
    env_overrides: dict[str, str],
    ready_timeout: float,
    progress: Progress,
) -> StackChoice:
    def choice(endpoints: Endpoints | None) -> StackChoice:
        return StackChoice(endpoints, amqp_url, mongo_url, env_overrides, ready_timeout, progress)

    if given is not None:
        for name, url in given.by_service().items():
            require_loopback(name, url)
        for name, url in given.by_service().items():
            status = await readiness(url)
            if status != 200:
                raise StackError(
                    f"{name} at {url} is not ready (GET /readyz: {status or 'no answer'})"
                )
        progress.say(f"using the given stack: {given}")
        return choice(given)
    if not force_start:
        defaults = default_endpoints()
        statuses = {n: await readiness(u) for n, u in defaults.by_service().items()}
        if all(s == 200 for s in statuses.values()):
            progress.say("using the stack already running on the default ports (8000-8002)")
            return choice(defaults)
        if any(s is not None for s in statuses.values()):
            raise StackError(
                f"a partial stack answers on the default ports ({statuses}); start the rest, "
                "stop it, pass --edge-url/--messaging-url/--presence-url, or --start-stack"
            )
    check_infrastructure(amqp_url, mongo_url)
    progress.say("no stack given or running: starting one per scenario")
    return choice(None)
