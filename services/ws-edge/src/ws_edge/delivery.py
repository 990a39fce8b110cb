"""This edge's delivery queue: outbound events for the users connected here.

A delivery's body is the client's frame, already encoded by its publisher, and its routing is
in headers (chat_core.delivery_wire): the edge reads the headers and hands the same text to
every socket it is for, parsing and re-encoding nothing.
"""

import contextlib

import structlog
from aio_pika.abc import AbstractQueue
from aiormq.abc import DeliveredMessage

from chat_core import metrics
from chat_core.broker import Broker
from chat_core.close_codes import CloseCode
from chat_core.delivery_wire import (
    DISCONNECT,
    BadDelivery,
    Routed,
    decode_parts,
    shard_key,
    shard_of,
)
from ws_edge.registry import Connection, ConnectionRegistry
from ws_edge.shards import ShardBindings

log = structlog.get_logger(__name__)


class EdgeDelivery:
    def __init__(self, broker: Broker, edge_id: str, *, shard_linger_seconds: float) -> None:
        self._broker = broker
        self._edge_id = edge_id
        self._queue: AbstractQueue | None = None
        shards = broker.topology.delivery_shards
        self.registry = ConnectionRegistry(
            ShardBindings(self.bind, self.unbind, shard_linger_seconds),
            lambda user_id: shard_of(user_id, shards),
        )

    async def start(self) -> None:
        channel = await self._broker.connection.channel(publisher_confirms=False)
        # Exclusive: the queue dies with this edge, and only its own users' events are lost.
        self._queue = await channel.declare_queue(
            self._broker.topology.edge_queue(self._edge_id), exclusive=True, auto_delete=True
        )
        await self._consume()
        # A channel reopened (alone, or with a restored connection) lost the consumer.
        reopened = getattr(channel, "reopen_callbacks", None)
        if reopened is not None:
            reopened.add(self._consume_again)
        self._broker.on_reconnect(self._queue_was_lost)

    async def _consume(self) -> None:
        """Consume straight from aiormq: aio-pika's consumer builds an IncomingMessage and a
        second task per delivery, which measured as much as everything else the edge does
        with it. No acks: if this process dies, the sockets the events were for die too."""
        assert self._queue is not None
        channel = await self._queue.channel.get_underlay_channel()
        await channel.basic_consume(self._queue.name, self._on_delivered, no_ack=True)

    async def _consume_again(self, *_: object) -> None:
        await self._consume()

    async def close(self) -> None:
        await self.registry.shards.close()

    async def _queue_was_lost(self) -> None:
        """The broker connection came back, on this node or another: the exclusive queue died
        with the old connection and whatever was routed to it in between is gone.

        aio-pika has declared the queue again and re-bound every shard by now. Closing the
        sockets with 1012 makes each client reconnect and resume with `since`, which replays
        the gap from the store, instead of silently missing it.
        """
        connections = self.registry.all()
        log.warning(
            "delivery queue re-created after a broker reconnect; closing sockets to resume",
            connections=len(connections),
        )
        for connection in connections:
            with contextlib.suppress(Exception):
                # In the background: a peer that reads nothing must not hold up the others.
                connection.close_soon(
                    CloseCode.SERVICE_RESTART, "delivery interrupted; reconnect and resume"
                )

    def is_ready(self) -> bool:
        return self._queue is not None and not self._queue.channel.is_closed

    async def bind(self, shard: int) -> None:
        assert self._queue is not None
        await self._queue.bind(self._broker.deliver_exchange, shard_key(shard))

    async def unbind(self, shard: int) -> None:
        assert self._queue is not None
        await self._queue.unbind(self._broker.deliver_exchange, shard_key(shard))

    async def _on_delivered(self, message: DeliveredMessage) -> None:
        properties = message.header.properties
        try:
            routed = decode_parts(message.body, properties.headers, properties.message_type)
        except BadDelivery as error:
            log.error("undecodable delivery dropped", error=str(error), body=message.body[:256])
            return
        of_user = self.registry.of_user
        if routed.kind == DISCONNECT:
            for user_id in routed.users:
                connections = of_user(user_id)
                if connections:
                    self._disconnect(routed, user_id, connections)
            return
        for user_id in routed.users:
            connections = of_user(user_id)
            if connections:
                self._deliver(routed, user_id, connections)

    @staticmethod
    def _deliver(routed: Routed, user_id: str, connections: list[Connection]) -> None:
        written = 0
        for connection in connections:
            if not routed.is_for(connection.connection_id):
                continue
            if connection.held is not None:
                # Released after the resume's replay (ws_edge/resume.py).
                connection.hold(routed.payload, routed.conversation_id, routed.seq)
            elif not connection.repeats_replay(
                routed.conversation_id, routed.seq
            ) and connection.offer(routed.payload):
                written += 1
                metrics.delivered(routed.event, routed.at)
        if routed.request_id is not None:
            # Caused by a REST request: the line that follows it to the socket, at debug (a
            # line per delivery at info cost more than the delivery itself).
            log.debug(
                "delivered",
                frame=routed.event,
                user_id=user_id,
                sockets=written,
                message_id=routed.message_id,
                request_id=routed.request_id,
            )

    @staticmethod
    def _disconnect(routed: Routed, user_id: str, connections: list[Connection]) -> None:
        log.info(
            "closing user's connections",
            user_id=user_id,
            code=routed.code,
            connection_id=routed.connection_id,
        )
        for connection in connections:
            if routed.connection_id in (None, connection.connection_id):
                # In the background: a peer that reads nothing must not stall deliveries.
                connection.close_soon(routed.code, routed.reason)
