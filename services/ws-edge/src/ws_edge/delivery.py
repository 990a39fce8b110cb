"""This edge's delivery queue: outbound events for the users connected here."""

import contextlib

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from chat_core import metrics
from chat_core.broker import Broker, recipients, user_key
from chat_core.close_codes import CloseCode
from chat_core.events import Deliver, Disconnect, outbound_event_adapter
from ws_edge.registry import Connection, ConnectionRegistry

log = structlog.get_logger(__name__)


class EdgeDelivery:
    def __init__(self, broker: Broker, edge_id: str) -> None:
        self._broker = broker
        self._edge_id = edge_id
        self._queue: AbstractQueue | None = None
        self.registry = ConnectionRegistry(self.bind, self.unbind)

    async def start(self) -> None:
        channel = await self._broker.connection.channel(publisher_confirms=False)
        # Exclusive: the queue dies with this edge, and only its own users' events are lost.
        self._queue = await channel.declare_queue(
            self._broker.topology.edge_queue(self._edge_id), exclusive=True, auto_delete=True
        )
        # No acks: if this process dies, the sockets the events were for die with it.
        await self._queue.consume(self._on_message, no_ack=True)
        self._broker.on_reconnect(self._queue_was_lost)

    async def _queue_was_lost(self) -> None:
        """The broker connection came back, on this node or another: the exclusive queue died
        with the old connection and whatever was routed to it in between is gone.

        aio-pika has declared the queue again and re-bound every user key by now. Closing the
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

    async def bind(self, user_id: str) -> None:
        assert self._queue is not None
        await self._queue.bind(self._broker.deliver_exchange, user_key(user_id))

    async def unbind(self, user_id: str) -> None:
        assert self._queue is not None
        await self._queue.unbind(self._broker.deliver_exchange, user_key(user_id))

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        users = recipients(message)
        try:
            envelope = outbound_event_adapter.validate_json(message.body)
        except ValidationError:
            log.error("undecodable delivery dropped", user_ids=users, body=message.body[:256])
            return
        if isinstance(envelope, Deliver):
            payload = envelope.frame.to_text()
            for user_id in users:
                connections = self.registry.of_user(user_id)
                if connections:
                    await self._deliver(envelope, payload, user_id, connections)
        elif isinstance(envelope, Disconnect):
            for user_id in users:
                connections = self.registry.of_user(user_id)
                if connections:
                    self._disconnect(envelope, user_id, connections)

    async def _deliver(
        self, envelope: Deliver, payload: str, user_id: str, connections: list[Connection]
    ) -> None:
        event = envelope.frame.event
        written = 0
        for connection in connections:
            if (
                envelope.connection_id not in (None, connection.connection_id)
                or envelope.skip_connection_id == connection.connection_id
            ):
                continue
            if connection.held is not None:
                # Released after the resume's replay (ws_edge/resume.py).
                connection.hold(envelope.frame, payload)
            elif not connection.repeats_replay(envelope.frame) and await connection.send(payload):
                written += 1
                metrics.delivered(event, envelope.at)
        if envelope.request_id is not None:
            # Caused by a REST request: the line that follows its message to the socket.
            log.info(
                "delivered",
                frame=event,
                user_id=user_id,
                sockets=written,
                message_id=getattr(envelope.frame, "message_id", None),
                request_id=envelope.request_id,
            )

    @staticmethod
    def _disconnect(envelope: Disconnect, user_id: str, connections: list[Connection]) -> None:
        log.info(
            "closing user's connections",
            user_id=user_id,
            code=envelope.code,
            connection_id=envelope.connection_id,
        )
        for connection in connections:
            if envelope.connection_id in (None, connection.connection_id):
                # In the background: a peer that reads nothing must not stall deliveries.
                connection.close_soon(envelope.code, envelope.reason)
