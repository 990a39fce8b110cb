"""RabbitMQ topology, confirmed publishing and at-least-once consuming (aio-pika).

events exchange (topic)   edge -> workers, keyed by envelope `event` (client.typing, conn.opened...)
deliver exchange (direct) workers -> edges, keyed by delivery shard `d.<n>` of the user; each
                          edge binds the shards of the users it holds; one publish names its
                          recipients (headers) and their shards (CC), each edge gets one copy
dead-letter exchange      poison messages, one dead queue per consuming service

Partitions (Topology.partitions > 0): the presence and messaging queues become N queues with a
single active consumer each. Every event about a user is published with the user's slot
appended to its key (`conn.opened.17`, one of SLOTS), and slot s is bound to partition
s % N, so all of one user's events reach one queue, and that queue one consumer at a time:
any number of instances run, each user's state has one writer (the embedded database has
no atomic conditional update), and a partition moves to a standby instance when its
consumer goes away. With 0 (the default) each is one shared queue, for one instance.

Durable queues are classic (one node; the faster kind there) or quorum (replicated by Raft
across a cluster, surviving the loss of a minority of nodes): `Topology.queue_type`.
A service is given every node's URL and holds one connection to one of them; when that node
goes away the connection moves to the next (FailoverConnection).
"""

import asyncio
import contextlib
import random
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Literal, TypeVar

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    DeliveryMode,
    FieldValue,
)
from aio_pika.robust_connection import RobustConnection
from pydantic import TypeAdapter, ValidationError
from pymongo.errors import AutoReconnect, ConnectionFailure, OperationFailure
from yarl import URL

from chat_core import delivery_wire, metrics
from chat_core.delivery_wire import DEFAULT_SHARDS, shard_key, shard_of
from chat_core.events import (
    AccountChanged,
    ClientEvent,
    ClientHeartbeat,
    ClientMessageRead,
    ClientSendMessage,
    ClientStatusChange,
    ClientTyping,
    ConnectionClosed,
    ConnectionOpened,
    ConversationCreated,
    Deliver,
    Disconnect,
    EdgeAlive,
    Frame,
    SenderRead,
    SendersRead,
    SweepTick,
    routing_kind,
)

log = structlog.get_logger(__name__)

E = TypeVar("E")

PRESENCE = "presence"
EDGES = "presence-edges"
MESSAGING = "messaging"
SENDS = "sends"
TYPING = "typing"

# Per-user state lives behind these queues: they are split into partitions when asked to.
# Socket sends are split by conversation instead (`keyed_by_slot`), so one instance appends
# to a conversation at a time and its seqs follow each other without contention.
PARTITIONED = frozenset({PRESENCE, MESSAGING, SENDS})
# A user's events carry one of this many slots in their routing key; partitions take slots.
SLOTS = 32

# The envelopes each worker queue receives, by class: routing keys, bindings and what a
# consumer accepts all derive from this and the schemas in chat_core.events.
QUEUE_EVENTS: dict[str, tuple[type[Frame], ...]] = {
    PRESENCE: (
        ConnectionOpened,
        ConnectionClosed,
        ClientHeartbeat,
        ClientStatusChange,
        ConversationCreated,
        SweepTick,
    ),
    # Edge announcements have their own queue so a backlog of connection events cannot
    # delay them and make presence think a live edge died.
    EDGES: (EdgeAlive,),
    MESSAGING: (ClientMessageRead, SenderRead, SendersRead),
    # Messages sent over sockets: stored, announced and acknowledged by messaging.
    SENDS: (ClientSendMessage,),
    # Typing is ephemeral: its own queue, short TTL, no dead-lettering.
    TYPING: (ClientTyping,),
}
# Put straight on a queue (publish_to_queue), never routed through the events exchange.
DIRECT_EVENTS: frozenset[type[Frame]] = frozenset({SweepTick})
# Received by every process on a queue of its own (`Broker.subscribe`), by no work queue.
SUBSCRIBED_EVENTS: frozenset[type[Frame]] = frozenset({AccountChanged})
# Events that every instance of a partitioned consumer needs (cache invalidation): each
# instance gets its own copy on an exclusive queue.
BROADCAST_KINDS = frozenset({routing_kind(ConversationCreated)})

# Which envelope kinds each worker queue is bound to on the events exchange.
QUEUE_BINDINGS: dict[str, tuple[str, ...]] = {
    queue: tuple(routing_kind(e) for e in events if e not in DIRECT_EVENTS)
    for queue, events in QUEUE_EVENTS.items()
}
# Which kinds a consumer of each queue accepts; anything else is dead-lettered as misrouted.
QUEUE_KINDS: dict[str, frozenset[str]] = {
    queue: frozenset(routing_kind(e) for e in events) for queue, events in QUEUE_EVENTS.items()
}
TYPING_TTL_SECONDS = 5
# Queues of ephemeral events: a message older than this is worthless, and nothing is
# dead-lettered (an expired typing indicator or announcement is not a poison message).
EPHEMERAL_TTL_SECONDS = {TYPING: TYPING_TTL_SECONDS, EDGES: 60}


class PublishTimeout(TimeoutError):
    """The broker did not take a publish (or confirm it) within the publish timeout.

    A broker under a memory or disk alarm blocks its publishers instead of refusing them;
    without a deadline every send would hang with it. Raised like a refused publish, with
    the same uncertainty: the message may still reach the queue later (at-least-once).
    """


class Requeue(Exception):
    """The handler cannot apply its message now (a write it depends on did not land, or it
    lost a race to another process): apply it again later. Retried like a transient
    failure, never dead-lettered for it."""


# Failures worth retrying forever (the database or broker is briefly away); anything else is
# retried once and then dead-lettered.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    Requeue,
    AutoReconnect,
    ConnectionFailure,
    aio_pika.exceptions.AMQPConnectionError,
    aio_pika.exceptions.ChannelInvalidStateError,
    ConnectionError,
    TimeoutError,
)


def is_transient(error: BaseException) -> bool:
    """Worth retrying until it works: the database or broker is briefly unavailable."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    # SQLite under FerretDB reports write contention as a plain OperationFailure.
    return isinstance(error, OperationFailure) and "database is locked" in str(error)


QueueType = Literal["classic", "quorum"]


def slot_of(user_id: str) -> int:
    return zlib.crc32(user_id.encode()) % SLOTS


def keyed_by_slot(envelope: Frame, kind: str) -> str:
    """`kind.<slot>` for an event about a user (a send: about a conversation), `kind`
    otherwise."""
    if isinstance(envelope, ClientEvent) and isinstance(envelope.frame, ClientSendMessage):
        return f"{kind}.{slot_of(envelope.frame.conversation_id)}"
    user_id = getattr(envelope, "user_id", None)
    return f"{kind}.{slot_of(user_id)}" if isinstance(user_id, str) else kind


@dataclass(frozen=True)
class Topology:
    prefix: str
    queue_type: QueueType = "classic"
    partitions: int = 0
    delivery_shards: int = DEFAULT_SHARDS

    def delivery_key(self, user_id: str) -> str:
        return user_key(user_id, self.delivery_shards)

    def partitioned(self, consumer: str) -> bool:
        return self.partitions > 0 and consumer in PARTITIONED

    def partition_queue(self, consumer: str, partition: int) -> str:
        return f"{self.prefix}.{consumer}.p{partition}"

    def queues_of(self, consumer: str) -> list[str]:
        """The queues a consumer reads: its partitions, or its one shared queue."""
        if self.partitioned(consumer):
            return [self.partition_queue(consumer, p) for p in range(self.partitions)]
        return [self.queue(consumer)]

    def partition_of(self, user_id: str) -> int:
        return slot_of(user_id) % max(1, self.partitions)

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def deliver_exchange(self) -> str:
        return f"{self.prefix}.deliver"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}.dead-letter"

    def queue(self, consumer: str) -> str:
        return f"{self.prefix}.{consumer}"

    def dead_queue(self, consumer: str) -> str:
        return f"{self.prefix}.{consumer}.dead"

    def edge_queue(self, edge_id: str) -> str:
        return f"{self.prefix}.edge.{edge_id}"


def user_key(user_id: str, shards: int = DEFAULT_SHARDS) -> str:
    """The routing key a user's deliveries travel under: their delivery shard's."""
    return shard_key(shard_of(user_id, shards))


# Recipients named in one publish. The headers travel in one AMQP frame (128 KiB by
# default); 500 phone-number ids and their shard keys take about 12 KiB.
_RECIPIENTS_PER_PUBLISH = 500


def recipients(message: AbstractIncomingMessage) -> list[str]:
    """The user ids a delivery names (`Broker.deliver`)."""
    return delivery_wire.recipients(message.headers or {})


async def declare_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Idempotent; every process declares it so no publish lands before its queue exists."""
    events = await channel.declare_exchange(
        topology.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    await channel.declare_exchange(
        topology.deliver_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead = await channel.declare_exchange(
        topology.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    # Every durable queue gets the same type: a classic queue on a cluster lives on one node
    # and is unusable while that node is down, which would stall its consumers' recovery.
    typed: dict[str, Any] = {"x-queue-type": topology.queue_type}
    for consumer, keys in QUEUE_BINDINGS.items():
        arguments: dict[str, Any]
        if consumer in EPHEMERAL_TTL_SECONDS:
            arguments = {"x-message-ttl": EPHEMERAL_TTL_SECONDS[consumer] * 1000, **typed}
        else:
            arguments = {
                "x-dead-letter-exchange": topology.dead_letter_exchange,
                "x-dead-letter-routing-key": consumer,
                **typed,
            }
            dead_queue = await channel.declare_queue(
                topology.dead_queue(consumer), durable=True, arguments=typed
            )
            await dead_queue.bind(dead, consumer)
        if topology.partitioned(consumer):
            await _declare_partitions(channel, topology, consumer, keys, arguments)
            continue
        queue = await channel.declare_queue(
            topology.queue(consumer), durable=True, arguments=arguments
        )
        for key in keys:
            # `kind.#` matches `kind` and `kind.<slot>` alike.
            await queue.bind(events, f"{key}.#")


async def delete_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Removes what `declare_topology` made, messages included.

    For throwaway prefixes (test sessions, benchmark runs): durable queues outlive the run
    that declared them, and a broker recovering thousands of them at boot can take longer
    than anyone waits for it.
    """
    for consumer in QUEUE_BINDINGS:
        names = {topology.queue(consumer), topology.dead_queue(consumer)}
        names.update(topology.queues_of(consumer))
        for name in sorted(names):
            await channel.queue_delete(name)
    for exchange in (
        topology.events_exchange,
        topology.deliver_exchange,
        topology.dead_letter_exchange,
    ):
        await channel.exchange_delete(exchange)


async def _declare_partitions(
    channel: AbstractChannel,
    topology: Topology,
    consumer: str,
    keys: Iterable[str],
    arguments: dict[str, Any],
) -> None:
    events = await channel.get_exchange(topology.events_exchange)
    for partition in range(topology.partitions):
        queue = await channel.declare_queue(
            topology.partition_queue(consumer, partition),
            durable=True,
            arguments={**arguments, "x-single-active-consumer": True},
        )
        await asyncio.gather(
            *(
                queue.bind(events, f"{key}.{slot}")
                for key in keys
                if key not in BROADCAST_KINDS
                for slot in range(partition, SLOTS, topology.partitions)
            )
        )


class FailoverConnection(RobustConnection):
    """aio-pika's robust connection, reconnecting round-robin over several nodes' URLs.

    RobustConnection retries its one `url` every `reconnect_interval` and then restores every
    channel, exchange, queue, binding and consumer declared through it. This points `url` at
    the next node when the connection drops, and again after each interval that passes
    without a connection, so a dead node is skipped and a restarted one is tried in turn.
    """

    def __init__(self, urls: Sequence[str], reconnect_interval: float, **kwargs: Any) -> None:
        super().__init__(urls[0], **kwargs)  # type: ignore[arg-type]
        self._urls = [URL(url) for url in urls]
        self._at = 0
        self.reconnect_interval = reconnect_interval
        self._rotation: asyncio.Task[None] | None = None

    def _next_url(self) -> None:
        self._at = (self._at + 1) % len(self._urls)
        self.url = self._urls[self._at]

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        await super()._on_connection_close(closing)
        if self._close_called or self.is_closed or len(self._urls) == 1:
            return
        if self._rotation is None or self._rotation.done():
            self._rotation = self.loop.create_task(self._rotate_until_connected())

    async def _rotate_until_connected(self) -> None:
        while not (self._close_called or self.is_closed):
            self._next_url()
            log.warning("broker connection lost, trying next node", node=_redact(str(self.url)))
            await asyncio.sleep(self.reconnect_interval)
            if self.connected.is_set():
                return

    async def close(self, exc: Any = asyncio.CancelledError) -> None:
        if self._rotation is not None:
            self._rotation.cancel()
        await super().close(exc)


def _redact(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


async def connect_failover(
    urls: Sequence[str], name: str, *, reconnect_interval: float = 1.0
) -> FailoverConnection:
    """Connect to the first node that answers, starting at a random one to spread clients."""
    if not urls:
        raise ValueError("no broker URL given")
    start = random.randrange(len(urls))
    ordered = [*urls[start:], *urls[:start]]
    error: BaseException | None = None
    for offset in range(len(ordered)):
        connection = FailoverConnection(
            [*ordered[offset:], *ordered[:offset]],
            reconnect_interval,
            client_properties={"connection_name": name},
        )
        try:
            await connection.connect(timeout=10)
        except (aio_pika.exceptions.AMQPConnectionError, ConnectionError, OSError) as failure:
            error = failure
            await connection.close()
            log.warning(
                "broker node unavailable", node=_redact(ordered[offset]), error=str(failure)
            )
            continue
        return connection
    assert error is not None
    raise error


class Broker:
    """One failover connection; a confirmed channel for publishing, one channel per consumer."""

    def __init__(
        self,
        urls: str | Sequence[str],
        topology: Topology,
        name: str,
        *,
        reconnect_interval: float = 1.0,
        publish_timeout: float = 10.0,
    ) -> None:
        self.topology = topology
        self._urls = [urls] if isinstance(urls, str) else list(urls)
        self._name = name
        self._reconnect_interval = reconnect_interval
        self._publish_timeout = publish_timeout
        self._connection: FailoverConnection | None = None
        self._channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self._deliver: AbstractExchange | None = None
        # Events that expire (typing, edge.alive) go unconfirmed on a channel of their own:
        # losing one to a broker crash is the same as its expiring, and confirm bookkeeping
        # was most of typing's cost in a profile (docs/performance.md).
        self._fleeting_events: AbstractExchange | None = None
        self._fleeting_deliver: AbstractExchange | None = None

    async def start(self) -> None:
        self._connection = await connect_failover(
            self._urls, self._name, reconnect_interval=self._reconnect_interval
        )
        self._channel = await self._connection.channel(publisher_confirms=True)
        await declare_topology(self._channel, self.topology)
        self._events = await self._channel.get_exchange(self.topology.events_exchange)
        self._deliver = await self._channel.get_exchange(self.topology.deliver_exchange)
        fleeting = await self._connection.channel(publisher_confirms=False)
        self._fleeting_events = await fleeting.get_exchange(self.topology.events_exchange)
        self._fleeting_deliver = await fleeting.get_exchange(self.topology.deliver_exchange)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    @property
    def connection(self) -> AbstractRobustConnection:
        assert self._connection is not None, "Broker.start() first"
        return self._connection

    @property
    def deliver_exchange(self) -> AbstractExchange:
        assert self._deliver is not None, "Broker.start() first"
        return self._deliver

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` each time the connection is back (on any node) and restored."""

        async def reconnected(_connection: object) -> None:
            await callback()

        self.connection.reconnect_callbacks.add(reconnected)

    def is_ready(self) -> bool:
        # A robust connection is not "closed" while it reconnects: ask whether it is connected.
        return (
            self._connection is not None
            and self._connection.connected.is_set()
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def publish_event(
        self, envelope: Frame, routing_key: str, *, ttl: float | None = None
    ) -> None:
        """Publish to the events exchange and wait for the broker's confirm; an event with a
        `ttl` expires anyway, so it is published without one."""
        assert self._events is not None, "Broker.start() first"
        assert self._fleeting_events is not None
        exchange = self._events if ttl is None else self._fleeting_events
        key = keyed_by_slot(envelope, routing_key)
        with _confirm_timer("events", ttl):
            async with _deadline(self._publish_timeout):
                await exchange.publish(_message(envelope.to_json(), ttl), key, mandatory=False)

    async def deliver(
        self, user_ids: Iterable[str], envelope: Deliver | Disconnect, *, ttl: float | None = None
    ) -> None:
        """Deliver one envelope to every device of each user; returns once confirmed (if it
        has no `ttl`: what expires is published unconfirmed, as in `publish_event`).

        The body is the frame as the client receives it, encoded here once; routing rides in
        headers (chat_core.delivery_wire). One publish names up to 500 users in its `users`
        header and is routed by their delivery shards: the first shard's key, the others in
        the CC header (RabbitMQ's sender-selected distribution). RabbitMQ puts one copy in
        each queue bound to any of them, so each edge holding any of the users gets one copy
        and hands it to those it holds. A group's message costs one publish and one confirm
        per 500 members, not one per member.
        """
        body, headers, kind = delivery_wire.encode(envelope)
        exchange = self.deliver_exchange if ttl is None else self._fleeting_deliver
        assert exchange is not None
        users = list(dict.fromkeys(user_ids))
        shards = self.topology.delivery_shards
        publishes = []
        for start in range(0, len(users), _RECIPIENTS_PER_PUBLISH):
            chunk = users[start : start + _RECIPIENTS_PER_PUBLISH]
            keys = list(dict.fromkeys(shard_key(shard_of(user, shards)) for user in chunk))
            named: dict[str, FieldValue] = {**headers, "users": list[FieldValue](chunk)}
            if len(keys) > 1:
                named["CC"] = list[FieldValue](keys[1:])
            message = _message(body, ttl, headers=named, kind=kind)
            # mandatory=False: a shard no edge has bound has nobody online, not an error.
            publishes.append(exchange.publish(message, keys[0], mandatory=False))
        with _confirm_timer("deliver", ttl):
            async with _deadline(self._publish_timeout):
                await asyncio.gather(*publishes)

    async def consume(
        self,
        consumer: str,
        adapter: TypeAdapter[E],
        handler: Callable[[E], Awaitable[None]],
        *,
        prefetch: int,
    ) -> AbstractQueue:
        """Consume every queue of `consumer` (its partitions, or its one queue); returns the
        first. A partition delivers to this process only while it is its active consumer."""
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        acking = _acking(consumer, adapter, handler)
        queues = []
        for name in self.topology.queues_of(consumer):
            queue = await channel.get_queue(name, ensure=True)
            await queue.consume(acking)
            queues.append(queue)
        return queues[0]

    async def consume_broadcasts(
        self,
        consumer: str,
        adapter: TypeAdapter[E],
        handler: Callable[[E], Awaitable[None]],
    ) -> None:
        """This process's own copy of the BROADCAST_KINDS a partitioned consumer is bound to
        (nothing when unpartitioned: the shared queue has them)."""
        if not self.topology.partitioned(consumer):
            return
        channel = await self.connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        events = await channel.get_exchange(self.topology.events_exchange)
        for key in QUEUE_BINDINGS[consumer]:
            if key in BROADCAST_KINDS:
                await queue.bind(events, f"{key}.#")
        await queue.consume(_acking(consumer, adapter, handler))

    async def subscribe(
        self,
        kinds: Iterable[str],
        adapter: TypeAdapter[E],
        handler: Callable[[E], Awaitable[None]],
    ) -> None:
        """This process's own copy of every event of `kinds`, on an exclusive queue that lives
        as long as its connection (the robust connection declares it again after a
        reconnect; what was published in between is missed)."""
        channel = await self.connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        events = await channel.get_exchange(self.topology.events_exchange)
        for kind in kinds:
            await queue.bind(events, f"{kind}.#")
        await queue.consume(_acking("subscription", adapter, handler))

    async def publish_to_queue(self, queue: str, envelope: Frame, *, ttl: float) -> None:
        """Straight to one queue (the default exchange), confirmed."""
        assert self._channel is not None, "Broker.start() first"
        async with _deadline(self._publish_timeout):
            await self._channel.default_exchange.publish(_message(envelope.to_json(), ttl), queue)


@contextlib.asynccontextmanager
async def _deadline(seconds: float) -> AsyncIterator[None]:
    """A publish not done within `seconds` raises PublishTimeout."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as error:
        if isinstance(error, PublishTimeout):
            raise
        raise PublishTimeout(f"broker did not take the publish within {seconds:g}s") from error


@contextlib.contextmanager
def _confirm_timer(exchange: str, ttl: float | None) -> Iterator[None]:
    """Count a confirmed publish's latency or failure; one with a `ttl` has no confirm."""
    if ttl is not None:
        yield
        return
    started = perf_counter()
    try:
        yield
    except BaseException:
        metrics.PUBLISH_FAILURES.labels(exchange).inc()
        raise
    metrics.PUBLISH_CONFIRM.labels(exchange).observe(perf_counter() - started)


def _message(
    body: bytes,
    ttl: float | None,
    *,
    headers: dict[str, FieldValue] | None = None,
    kind: str | None = None,
) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        headers=headers,
        content_type="application/json",
        delivery_mode=DeliveryMode.NOT_PERSISTENT if ttl else DeliveryMode.PERSISTENT,
        expiration=ttl,
        type=kind,
    )


def _acking(
    consumer: str, adapter: TypeAdapter[E], handler: Callable[[E], Awaitable[None]]
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """Wrap a handler: decode once, ack only after it returns, dead-letter poison (what
    does not decode, or an envelope of a kind this queue is not meant to receive)."""
    accepted = QUEUE_KINDS.get(consumer)

    def count(outcome: str) -> None:
        metrics.CONSUMED.labels(consumer, outcome).inc()

    async def on_message(message: AbstractIncomingMessage) -> None:
        if message.redelivered:
            metrics.REDELIVERIES.labels(consumer).inc()
        try:
            envelope = adapter.validate_json(message.body)
        except ValidationError as error:
            log.error(
                "poison message dead-lettered",
                consumer=consumer,
                routing_key=message.routing_key,
                error=str(error),
                body=message.body[:512].decode(errors="replace"),
            )
            await message.reject(requeue=False)
            count("poison")
            metrics.DEAD_LETTERS.labels(consumer, "poison").inc()
            return
        kind = getattr(envelope, "event", None)
        if accepted is not None and kind not in accepted:
            log.error(
                "misrouted message dead-lettered",
                consumer=consumer,
                routing_key=message.routing_key,
                kind=kind,
            )
            await message.reject(requeue=False)
            count("poison")
            metrics.DEAD_LETTERS.labels(consumer, "poison").inc()
            return
        try:
            await handler(envelope)
        except Exception as error:
            if is_transient(error):
                log.warning("transient failure, requeued", consumer=consumer, error=repr(error))
                await asyncio.sleep(0.5)
                await message.nack(requeue=True)
                count("requeued")
            elif message.redelivered:
                log.exception(
                    "message failed twice, dead-lettered",
                    consumer=consumer,
                    routing_key=message.routing_key,
                )
                await message.reject(requeue=False)
                count("dead_lettered")
                metrics.DEAD_LETTERS.labels(consumer, "failed_twice").inc()
            else:
                log.exception("message failed, retrying once", consumer=consumer)
                await message.nack(requeue=True)
                count("retried")
            return
        await message.ack()
        count("acked")

    return on_message
