"""Fault drill: the stack on a 3-node RabbitMQ cluster, under steady sends, loses a broker
node, a messaging process and an edge, one after the other.

What it measures (the goal is 0, 0, < 30 s, 0):
- lost: accepted sends (HTTP 201) their recipient neither received (live, or through the
  recovery a client does after every reconnect) nor can find in the conversation's history;
- duplicates: stored messages beyond one per clientMessageId (a retried send stored twice);
- ready again: seconds from each fault until every service answers /readyz with 200;
- online without a socket: users still shown with a device after every socket closed.

The client here does what an app does: one socket per user, reconnect to another edge when
the socket closes (1012 or a dropped connection), and after each reconnect fetch the newest
history of its conversations (the `since` resume replaces that when it lands). Sends are
REST calls spread over the messaging instances, retried with the same clientMessageId.

Used by `chat-bench faults` (long) and tests/e2e/deploy/test_cluster.py (short).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import orjson
from chat_launcher import ServiceProcess, free_port, is_ready, launch

from chat_bench.cpu import cpu_seconds
from chat_bench.rest import Http, RestError
from chat_bench.sockets import Device, Frame, SocketClosed, open_device

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
HISTORY_PAGE = 200
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MONGO = "mongodb://127.0.0.1:27017/"


def load_rabbit_cluster() -> ModuleType:
    """scripts/rabbit_cluster.py (standard library only, shared with `make run-cluster`)."""
    path = REPO / "scripts" / "rabbit_cluster.py"
    spec = importlib.util.spec_from_file_location("rabbit_cluster", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["rabbit_cluster"] = module
    spec.loader.exec_module(module)
    return module


def free_port_block(size: int, low: int, high: int) -> int:
    """A base such that base+1..base+size are free; outside the ephemeral range on purpose."""
    for _ in range(200):
        base = low + secrets.randbelow(high - low)
        if all(_port_free(base + i) for i in range(1, size + 1)):
            return base
    raise RuntimeError(f"no {size} free consecutive ports in {low}-{high}")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def new_user() -> str:
    return "+849" + "".join(secrets.choice("0123456789") for _ in range(8))


# --- the processes ------------------------------------------------------------------------


@dataclass
class Service:
    kind: str
    port: int
    env: dict[str, str]
    log_dir: Path
    launched: ServiceProcess | None = None
    starts: int = 0

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.launched is None else self.launched.process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def label(self) -> str:
        return self.env.get("EDGE_ID", f"{self.kind}-{self.port}")

    def start(self) -> None:
        self.starts += 1
        env = dict(self.env)
        if self.kind == "ws-edge":
            # A restarted edge is a new edge: presence expires the old one's connections.
            env["EDGE_ID"] = f"{self.env['EDGE_ID']}-{self.starts}"
        self.launched = launch(
            self.kind,
            self.port,
            env,
            command=[str(BIN / self.kind), "--port", str(self.port)],
            log_path=self.log_dir / f"{self.label}.log",
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.launched is not None:
            self.launched.stop(signal.SIGKILL)

    def stop(self) -> None:
        if self.launched is not None:
            self.launched.stop()


@dataclass
class ClusterStack:
    """A RabbitMQ cluster plus N of each service on it, on free ports."""

    cluster: Any  # rabbit_cluster.RabbitCluster
    mongo_url: str
    log_dir: Path
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        data_dir: Path,
        mongo_url: str,
        *,
        extra_env: dict[str, str] | None = None,
        prefix: str | None = None,
    ) -> ClusterStack:
        rabbit_cluster = load_rabbit_cluster()
        run = secrets.token_hex(3)
        amqp_base = free_port_block(3, 21000, 27000)
        cluster = rabbit_cluster.RabbitCluster(
            data_dir / "rabbit",
            prefix=prefix or f"t{run}",
            amqp_base=amqp_base,
            dist_base=free_port_block(3, 27000, 32000),
        )
        log_dir = data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "AMQP_URLS": ",".join(cluster.urls),
            "AMQP_URL": cluster.urls[0],
            "BROKER_QUEUE_TYPE": "quorum",
            "BROKER_PREFIX": f"drill-{run}",
            "MONGO_URL": mongo_url,
            "MONGO_DB": f"drill_{run}",
            "AUTH_MODE": "dev",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            **(extra_env or {}),
        }
        return cls(cluster, mongo_url, log_dir, env)

    def start_cluster(self) -> float:
        started = time.monotonic()
        self.cluster.start()
        return time.monotonic() - started

    def add(self, kind: str, count: int) -> list[Service]:
        added = []
        for i in range(count):
            env = dict(self.env)
            if kind == "ws-edge":
                env["EDGE_ID"] = f"edge-{i}-{secrets.token_hex(2)}"
            service = Service(kind, free_port(), env, self.log_dir)
            service.start()
            self.services.append(service)
            added.append(service)
        return added

    def cpu_seconds(self, kind: str) -> float:
        """User + system CPU of the running processes of one kind (Linux /proc)."""
        pids = [s.process.pid for s in self.of_kind(kind) if s.running and s.process]
        return sum(filter(None, (cpu_seconds(pid) for pid in pids)))

    def of_kind(self, kind: str) -> list[Service]:
        return [service for service in self.services if service.kind == kind]

    async def readiness(self) -> list[tuple[Service, bool]]:
        answers = await asyncio.gather(
            *(asyncio.to_thread(is_ready, service.port) for service in self.services)
        )
        return list(zip(self.services, answers, strict=True))

    async def wait_ready(self, _http: object = None, within: float = 180.0) -> tuple[float, float]:
        """(seconds until every kind has a ready instance, seconds until every instance is
        ready); raises after `within` seconds. (`_http`: accepted from callers that still
        pass an HTTP client of their own; readiness uses the launcher's probe.)"""
        started = time.monotonic()
        served: float | None = None
        while True:
            answers = await self.readiness()
            elapsed = time.monotonic() - started
            ready_kinds = {service.kind for service, ready in answers if ready}
            if served is None and ready_kinds >= {service.kind for service in self.services}:
                served = elapsed
            if all(ready for _service, ready in answers):
                return served if served is not None else elapsed, elapsed
            if elapsed > within:
                raise TimeoutError(f"services not ready within {within}s; logs in {self.log_dir}")
            for service in self.services:
                if service.process is not None and service.process.poll() is not None:
                    raise RuntimeError(f"{service.label} exited; see {self.log_dir}")
            await asyncio.sleep(0.1)

    def node_of(self, service: Service) -> int:
        """Index of the cluster node the service's broker connection is on."""
        listing = self.cluster.nodes[0].ctl(
            "list_connections", "name", "client_properties", "--formatter", "json"
        )
        wanted = service.env.get("EDGE_ID", "")
        for connection in orjson.loads(listing):
            properties = {item[0]: item[2] for item in connection["client_properties"]}
            name = str(properties.get("connection_name", ""))
            if wanted and name.startswith("ws-edge " + wanted):
                port = int(connection["name"].rsplit(":", 1)[1])
                for node in self.cluster.nodes:
                    if node.amqp_port == port:
                        return int(node.index) - 1
        raise LookupError(f"no broker connection of {service.label}")

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.cluster.stop()


# --- the clients --------------------------------------------------------------------------


@dataclass
class Phone:
    """One user's socket, reconnecting across edges, recovering gaps from history."""

    user_id: str
    stack: ClusterStack
    http: Http
    conversation_id: str = ""
    seen: set[str] = field(default_factory=set)
    live: int = 0
    recovered: int = 0
    closes: Counter[str] = field(default_factory=Counter)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    edge_port: int = 0
    _stop: bool = False
    _device: Device | None = None

    def start(self, first_edge: int) -> None:
        self.task = asyncio.create_task(self._run(first_edge))

    async def stop(self) -> None:
        self._stop = True
        if self._device is not None:
            await self._device.close()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self, edge_index: int) -> None:
        attempt = 0
        while not self._stop:
            edges = [e for e in self.stack.of_kind("ws-edge") if e.running]
            edge = edges[(edge_index + attempt) % len(edges)]
            self.edge_port = edge.port
            attempt += 1
            try:
                device = await open_device(edge.ws_url, self.user_id, self._note, within=5)
            except Exception:
                self.closes["connect-failed"] += 1
                await asyncio.sleep(0.2)
                continue
            self._device = device
            try:
                # Admitted and bound: whatever was sent before now is in history.
                await asyncio.wait_for(device.heartbeat(), 10)
                if attempt > 1:
                    await self._recover()
                self.connected.set()
                assert device.transport is not None
                await device.transport.wait_disconnected()
            except (SocketClosed, TimeoutError):
                await device.close()
            self.closes[str(device.close_code or 1006)] += 1
            self._device = None
            if not self._stop:
                self.connected.clear()
                await asyncio.sleep(0.2)

    def _note(self, _device: Device, frame: Frame, _at: float) -> None:
        if frame.get("event") == "new_message":
            message_id = frame.get("messageId")
            if isinstance(message_id, str) and message_id not in self.seen:
                self.seen.add(message_id)
                self.live += 1

    async def _recover(self) -> None:
        items = await history(self.stack, self.http, self.user_id, self.conversation_id, pages=1)
        for item in items:
            if "messageId" in item and item["messageId"] not in self.seen:
                self.seen.add(item["messageId"])
                self.recovered += 1


async def history(
    stack: ClusterStack,
    http: Http,
    user_id: str,
    conversation_id: str,
    *,
    pages: int = 1_000,
) -> list[dict[str, Any]]:
    """Newest first; `pages` pages of HISTORY_PAGE, retried over the messaging instances."""
    items: list[dict[str, Any]] = []
    before = ""
    for _ in range(pages):
        query = f"?limit={HISTORY_PAGE}" + (f"&before={before}" if before else "")
        path = f"/conversations/{conversation_id}/messages{query}"
        batch = (await _rest(stack, http, "GET", path, user_id))["items"]
        items.extend(batch)
        # A tombstone (a position with no message of its own) has no id to page from.
        ids = [item["messageId"] for item in batch if "messageId" in item]
        if len(batch) < HISTORY_PAGE or not ids:
            break
        before = ids[-1]
    return items


async def _rest(
    stack: ClusterStack,
    http: Http,
    method: str,
    path: str,
    user_id: str,
    payload: Any = None,
    *,
    within: float = 60.0,
    retries: _Sends | None = None,
) -> Any:
    """Retried over the messaging instances until one answers 2xx (a 4xx but 429 raises)."""
    deadline = time.monotonic() + within
    body = None if payload is None else orjson.dumps(payload)
    attempt = 0
    while True:
        targets = stack.of_kind("messaging")
        target = targets[attempt % len(targets)]
        attempt += 1
        try:
            status, answer = await http.call(method, f"{target.url}{path}", user_id, body)
        except (OSError, TimeoutError, aiohttp.ClientError):
            status, answer = 0, b""
        if 200 <= status < 300:
            return orjson.loads(answer)
        if 400 <= status < 500 and status != 429:
            raise RestError(f"{method} {path}", status, answer)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{method} {path} kept failing")
        if retries is not None:
            retries.retries += 1
        await asyncio.sleep(0.2)


# --- the drill ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillOptions:
    pairs: int = 20
    rate: float = 50.0
    warmup_seconds: float = 5.0
    node_down_seconds: float = 10.0
    between_seconds: float = 10.0
    settle_timeout: float = 60.0
    presence_timeout: float = 120.0
    # Wait, before the verdict, until the restarted node is back in the cluster (a minute
    # or more on a busy two-core machine; the services never wait for it).
    await_rejoin: bool = True


SHORT = DrillOptions(
    pairs=10,
    warmup_seconds=3,
    between_seconds=3,
    settle_timeout=30,
    presence_timeout=20,
    await_rejoin=False,
)


@dataclass
class DrillFigures:
    sends_per_second: float = 0.0
    warmup_sends_per_second: float = 0.0
    cpu_ms_per_send: dict[str, float] = field(default_factory=dict)
    accepted: int = 0
    not_accepted: int = 0
    send_retries: int = 0
    lost: int = 0
    unseen_by_recipient: int = 0
    duplicates: int = 0
    tombstones: int = 0
    delivered_live: int = 0
    recovered_from_history: int = 0
    # Per fault: until every process (the restarted one included) answers /readyz 200 ...
    ready_again_seconds: dict[str, float] = field(default_factory=dict)
    # ... and until every kind of service has at least one ready instance again.
    service_gap_seconds: dict[str, float] = field(default_factory=dict)
    node_rejoined_seconds: float = 0.0
    online_without_socket: int = 0
    closes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Sends:
    accepted: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # cmid -> cid,mid,to
    not_accepted: int = 0
    retries: int = 0
    attempted: int = 0


async def _send(
    stack: ClusterStack,
    http: Http,
    sends: _Sends,
    sender: str,
    recipient: str,
    conversation_id: str,
    client_message_id: str,
) -> None:
    payload = {"content": client_message_id, "messageType": "text"}
    path = f"/conversations/{conversation_id}/messages"
    try:
        # The same clientMessageId on every retry: the message is stored once.
        stored = await _rest(
            stack,
            http,
            "POST",
            path,
            sender,
            {**payload, "clientMessageId": client_message_id},
            within=30,
            retries=sends,
        )
    except (TimeoutError, RestError):
        sends.not_accepted += 1
        return
    sends.accepted[client_message_id] = (conversation_id, stored["messageId"], recipient)


async def run_drill(
    stack: ClusterStack,
    options: DrillOptions,
    log: Any = print,
) -> DrillFigures:
    """The services must be running and ready on the cluster."""
    figures = DrillFigures()
    async with Http("", connections=200) as http:
        pairs = [(new_user(), new_user()) for _ in range(options.pairs)]
        phones: dict[str, Phone] = {}
        conversations: list[str] = []
        for index, (a, b) in enumerate(pairs):
            created = await _rest(stack, http, "POST", "/conversations", a, {"participantIds": [b]})
            conversations.append(created["id"])
            for offset, user in enumerate((a, b)):
                phone = Phone(user, stack, http, conversation_id=created["id"])
                phone.start(index + offset)
                phones[user] = phone
        async with asyncio.timeout(30):
            await asyncio.gather(*(phone.connected.wait() for phone in phones.values()))
        log(f"{len(phones)} sockets connected; sending at {options.rate}/s")

        sends = _Sends()
        sending = True
        tag = secrets.token_hex(3)

        async def send_steadily() -> None:
            tasks: set[asyncio.Task[None]] = set()
            interval = 1 / options.rate
            next_at = time.monotonic()
            n = 0
            while sending:
                a, b = pairs[n % len(pairs)]
                sender, recipient = (a, b) if (n // len(pairs)) % 2 == 0 else (b, a)
                cid = conversations[n % len(pairs)]
                task = asyncio.create_task(
                    _send(stack, http, sends, sender, recipient, cid, f"{tag}-{n}")
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
                sends.attempted = n
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if tasks:
                await asyncio.gather(*tasks)

        load_started = time.monotonic()
        kinds = ("ws-edge", "messaging", "presence")
        cpu_before = {kind: stack.cpu_seconds(kind) for kind in kinds}
        sender_task = asyncio.create_task(send_steadily())
        await asyncio.sleep(options.warmup_seconds)
        # Before any fault: CPU per accepted send, all instances of a kind together.
        warm = max(1, len(sends.accepted))
        figures.cpu_ms_per_send = {
            kind: round(1000 * (stack.cpu_seconds(kind) - cpu_before[kind]) / warm, 2)
            for kind in kinds
        }
        figures.warmup_sends_per_second = round(
            len(sends.accepted) / (time.monotonic() - load_started), 1
        )

        # 1. A broker node: the one the first edge is connected to, so its queue dies too.
        edge = stack.of_kind("ws-edge")[0]
        node_index = await asyncio.to_thread(stack.node_of, edge)
        node = stack.cluster.nodes[node_index]
        log(f"SIGKILL RabbitMQ node {node.name} (under {edge.label})")
        killed_at = time.monotonic()
        await asyncio.to_thread(node.kill)
        await asyncio.sleep(0.2)
        served, everything = await stack.wait_ready(http)
        figures.service_gap_seconds["rabbitmq_node"] = round(served + 0.2, 2)
        figures.ready_again_seconds["rabbitmq_node"] = round(everything + 0.2, 2)
        await asyncio.sleep(max(0.0, options.node_down_seconds - (time.monotonic() - killed_at)))
        log(f"restarting {node.name}")
        restart_at = time.monotonic()
        # The node boots and rejoins in the background (tens of seconds on a busy machine):
        # the services do not wait for it, and neither do the next faults.
        rejoin = asyncio.create_task(asyncio.to_thread(stack.cluster.restart_node, node_index))
        rejoin.add_done_callback(
            lambda _: setattr(
                figures, "node_rejoined_seconds", round(time.monotonic() - restart_at, 2)
            )
        )
        await asyncio.sleep(options.between_seconds)

        # 2. A messaging process, then the edge holding most sockets; each restarted at once,
        # as a supervisor would, while the other instance carries on.
        for kind in ("messaging", "ws-edge"):
            victims = stack.of_kind(kind)
            held = Counter(phone.edge_port for phone in phones.values())
            victim = max(victims, key=lambda s: held[s.port]) if kind == "ws-edge" else victims[0]
            log(f"SIGKILL {victim.label}")
            await asyncio.to_thread(victim.kill)
            victim.start()
            served, everything = await stack.wait_ready(http)
            figures.service_gap_seconds[kind] = round(served, 2)
            figures.ready_again_seconds[kind] = round(everything, 2)
            await asyncio.sleep(options.between_seconds)

        sending = False
        await sender_task
        if options.await_rejoin:
            await rejoin
        else:
            # Its outcome is not part of the verdict; stopping the cluster ends the thread.
            rejoin.cancel()
        figures.sends_per_second = round(sends.attempted / (time.monotonic() - load_started), 1)
        log(f"{len(sends.accepted)} sends accepted; settling")

        def unseen() -> list[str]:
            return [
                mid for (_cid, mid, to) in sends.accepted.values() if mid not in phones[to].seen
            ]

        for _ in range(int(options.settle_timeout / 0.2)):
            if not unseen():
                break
            await asyncio.sleep(0.2)

        stored: dict[str, list[str]] = {}
        for (a, _b), cid in zip(pairs, conversations, strict=True):
            for item in await history(stack, http, a, cid):
                if "content" not in item:
                    # A tombstone: a position whose message was stored by another writer
                    # first (the store's own de-duplication); it has no content of its own.
                    figures.tombstones += 1
                    continue
                stored.setdefault(item["content"], []).append(item["messageId"])
        stored_ids = {mid for mids in stored.values() for mid in mids}
        missing = unseen()
        figures.accepted = len(sends.accepted)
        figures.not_accepted = sends.not_accepted
        figures.send_retries = sends.retries
        figures.unseen_by_recipient = len(missing)
        figures.lost = sum(1 for mid in missing if mid not in stored_ids)
        figures.duplicates = sum(len(set(mids)) - 1 for mids in stored.values())
        figures.delivered_live = sum(phone.live for phone in phones.values())
        figures.recovered_from_history = sum(phone.recovered for phone in phones.values())
        closes: Counter[str] = Counter()
        for phone in phones.values():
            closes.update(phone.closes)

        # Every socket closes; presence must show every user offline with no device.
        await asyncio.gather(*(phone.stop() for phone in phones.values()))
        figures.closes = dict(closes)
        presence = stack.of_kind("presence")
        deadline = time.monotonic() + options.presence_timeout
        while True:
            online = 0
            for user in phones:
                status, body = await http.call("GET", f"{presence[0].url}/presence/{user}", user)
                view = orjson.loads(body) if status == 200 else {}
                if view and (view["devices"] > 0 or view["status"] != "offline"):
                    online += 1
            figures.online_without_socket = online
            if not online or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    return figures


# --- bindings: what an edge costs the broker per connected user ----------------------------


async def measure_bindings(amqp_url: str, count: int, in_flight: int = 64) -> dict[str, float]:
    """Bind `count` user keys to one exclusive queue (as an edge does per user), then unbind."""
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            f"bench-bindings-{secrets.token_hex(4)}", aio_pika.ExchangeType.DIRECT, auto_delete=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        slots = asyncio.Semaphore(in_flight)
        keys = [f"user.+849{i:08d}" for i in range(count)]

        async def each(action: Any, key: str) -> None:
            async with slots:
                await action(exchange, key)

        started = time.monotonic()
        await asyncio.gather(*(each(queue.bind, key) for key in keys))
        bound = time.monotonic() - started
        started = time.monotonic()
        await asyncio.gather(*(each(queue.unbind, key) for key in keys))
        unbound = time.monotonic() - started
        await exchange.delete()
    finally:
        await connection.close()
    return {
        "binds_per_second": round(count / bound, 1),
        "unbinds_per_second": round(count / unbound, 1),
    }


# --- chat-bench faults / chat-bench bindings -------------------------------------------------


def main(command: str, argv: list[str]) -> None:
    import argparse
    import json

    import uvloop

    parser = argparse.ArgumentParser(prog=f"chat-bench {command}", description=__doc__)
    if command == "bindings":
        parser.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", DEFAULT_AMQP))
        parser.add_argument("--count", type=int, default=20_000)
        args = parser.parse_args(argv)
        print(json.dumps(uvloop.run(measure_bindings(args.amqp_url, args.count))))
        return
    defaults = DrillOptions()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--mongo-url", default=os.environ.get("MONGO_URL", DEFAULT_MONGO))
    parser.add_argument("--data", type=Path, default=Path(".data") / "faults")
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args(argv)
    options = DrillOptions(**{name: getattr(args, name) for name in asdict(defaults)})

    async def drill() -> DrillFigures:
        stack = ClusterStack.create(
            args.data.resolve(),
            args.mongo_url,
            extra_env={"BROKER_PARTITIONS": str(args.partitions)},
        )
        print(f"cluster started in {stack.start_cluster():.1f}s", file=sys.stderr)
        try:
            for kind in ("ws-edge", "messaging", "presence"):
                stack.add(kind, 2)
            await stack.wait_ready()
            return await run_drill(stack, options, log=lambda m: print(m, file=sys.stderr))
        finally:
            stack.stop()

    figures = uvloop.run(drill())
    print(json.dumps({"options": asdict(options), "figures": figures.as_dict()}))
    goal = (
        figures.lost == 0
        and figures.duplicates == 0
        and max(figures.service_gap_seconds.values()) < 30
        and max(figures.ready_again_seconds.values()) < 30
        and figures.online_without_socket == 0
    )
    sys.exit(0 if goal else 1)
