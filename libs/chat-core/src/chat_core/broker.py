"""RabbitMQ topology, confirmed publishing and at-least-once consuming (aio-pika).

events exchange (topic)   edge -> workers, keyed by envelope `event` (client.typing, conn.opened...)
deliver exchange (direct) workers -> edges, keyed `user.<id>`; each edge binds its users' keys
dead-letter exchange      poison messages, one dead queue per consuming service
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    DeliveryMode,
)
from pydantic import TypeAdapter, ValidationError
from pymongo.errors import AutoReconnect, ConnectionFailure, OperationFailure

from chat_core import metrics
from chat_core.events import Frame

log = structlog.get_logger(__name__)

E = TypeVar("E")

PRESENCE = "presence"
EDGES = "presence-edges"
MESSAGING = "messaging"
TYPING = "typing"

# Which envelope kinds each worker queue receives.
QUEUE_BINDINGS: dict[str, tuple[str, ...]] = {
    PRESENCE: (
        "conn.opened",
        "conn.closed",
        "client.heartbeat",
        "client.status_change",
        "conversation.created",
    ),
    # Edge announcements have their own queue so a backlog of connection events cannot
    # delay them and make presence think a live edge died.
    EDGES: ("edge.alive",),
    MESSAGING: ("client.message_read",),
    # Typing is ephemeral: its own queue, short TTL, no dead-lettering.
    TYPING: ("client.typing",),
}
TYPING_TTL_SECONDS = 5
# Queues of ephemeral events: a message older than this is worthless, and nothing is
# dead-lettered (an expired typing indicator or announcement is not a poison message).
EPHEMERAL_TTL_SECONDS = {TYPING: TYPING_TTL_SECONDS, EDGES: 60}

# Failures worth retrying forever (the database or broker is briefly away); anything else is
# retried once and then dead-lettered.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
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


@dataclass(frozen=True)
class Topology:
    prefix: str

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


def user_key(user_id: str) -> str:
    return f"user.{user_id}"


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
    for consumer, keys in QUEUE_BINDINGS.items():
        arguments: dict[str, Any]
        if consumer in EPHEMERAL_TTL_SECONDS:
            arguments = {"x-message-ttl": EPHEMERAL_TTL_SECONDS[consumer] * 1000}
        else:
            arguments = {
                "x-dead-letter-exchange": topology.dead_letter_exchange,
                "x-dead-letter-routing-key": consumer,
            }
            dead_queue = await channel.declare_queue(topology.dead_queue(consumer), durable=True)
            await dead_queue.bind(dead, consumer)
        queue = await channel.declare_queue(
            topology.queue(consumer), durable=True, arguments=arguments
        )
        for key in keys:
            await queue.bind(events, key)


class Broker:
    """One robust connection; a confirmed channel for publishing, one channel per consumer."""

    def __init__(self, url: str, topology: Topology, name: str) -> None:
        self.topology = topology
        self._url = url
        self._name = name
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self._deliver: AbstractExchange | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url, client_properties={"connection_name": self._name}
        )
        self._channel = await self._connection.channel(publisher_confirms=True)
        await declare_topology(self._channel, self.topology)
        self._events = await self._channel.get_exchange(self.topology.events_exchange)
        self._deliver = await self._channel.get_exchange(self.topology.deliver_exchange)

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

    def is_ready(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def publish_event(
        self, envelope: Frame, routing_key: str, *, ttl: float | None = None
    ) -> None:
        """Publish to the events exchange and wait for the broker's confirm."""
        assert self._events is not None, "Broker.start() first"
        with _confirm_timer("events"):
            await self._events.publish(
                _message(envelope.to_json(), ttl), routing_key, mandatory=False
            )

    async def deliver(
        self, user_ids: Iterable[str], envelope: Frame, *, ttl: float | None = None
    ) -> None:
        """Publish one envelope to each user's key; returns once every copy is confirmed."""
        body = envelope.to_json()
        exchange = self.deliver_exchange
        # mandatory=False: a user with no edge bound is offline, not an error.
        with _confirm_timer("deliver"):
            await asyncio.gather(
                *(
                    exchange.publish(_message(body, ttl), user_key(user_id), mandatory=False)
                    for user_id in user_ids
                )
            )

    async def consume(
        self,
        consumer: str,
        adapter: TypeAdapter[E],
        handler: Callable[[E], Awaitable[None]],
        *,
        prefetch: int,
    ) -> AbstractQueue:
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(self.topology.queue(consumer), ensure=True)
        await queue.consume(_acking(consumer, adapter, handler))
        return queue


@contextlib.contextmanager
def _confirm_timer(exchange: str) -> Iterator[None]:
    started = perf_counter()
    try:
        yield
    except BaseException:
        metrics.PUBLISH_FAILURES.labels(exchange).inc()
        raise
    metrics.PUBLISH_CONFIRM.labels(exchange).observe(perf_counter() - started)


def _message(body: bytes, ttl: float | None) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=DeliveryMode.NOT_PERSISTENT if ttl else DeliveryMode.PERSISTENT,
        expiration=ttl,
    )


def _acking(
    consumer: str, adapter: TypeAdapter[E], handler: Callable[[E], Awaitable[None]]
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """Wrap a handler: decode once, ack only after it returns, dead-letter poison."""

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
