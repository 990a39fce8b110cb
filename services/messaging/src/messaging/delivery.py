"""What the service sends to users' devices, as data the domain returns and handlers publish."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chat_core.clock import utcnow
from chat_core.events import Deliver, ErrorFrame, NewMessage, ServerFrame
from chat_core.request_context import current_request_id


class Deliverer(Protocol):
    """`chat_core.broker.Broker` in the services; returns once the broker confirmed."""

    async def deliver(
        self, user_ids: Iterable[str], envelope: Deliver, *, ttl: float | None = None
    ) -> None: ...


@dataclass(frozen=True)
class Delivery:
    user_ids: tuple[str, ...]
    frame: ServerFrame
    connection_id: str | None = None
    ttl: float | None = None
    skip_connection_id: str | None = None


def to_others(
    participants: Sequence[str], user_id: str, frame: ServerFrame, ttl: float | None = None
) -> Delivery:
    return Delivery(tuple(p for p in participants if p != user_id), frame, ttl=ttl)


def refusal(user_id: str, connection_id: str, message: str) -> Delivery:
    """An `error` event to the one socket whose frame was refused."""
    return Delivery((user_id,), ErrorFrame(message=message), connection_id=connection_id)


def origin(frame: ServerFrame) -> datetime:
    """When what the frame reports happened: a message's is when it was stored."""
    return datetime.fromisoformat(frame.timestamp) if isinstance(frame, NewMessage) else utcnow()


async def publish(deliverer: Deliverer, deliveries: Iterable[Delivery]) -> None:
    for delivery in deliveries:
        if delivery.user_ids:
            envelope = Deliver(
                frame=delivery.frame,
                connection_id=delivery.connection_id,
                skip_connection_id=delivery.skip_connection_id,
                at=origin(delivery.frame),
                request_id=current_request_id(),
            )
            await deliverer.deliver(delivery.user_ids, envelope, ttl=delivery.ttl)
