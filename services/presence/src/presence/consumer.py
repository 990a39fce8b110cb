"""The presence queue's handler: decode (done by the broker) -> domain call. Nothing else."""

from collections.abc import Awaitable, Callable

import structlog

from chat_core.events import (
    ClientEvent,
    ClientHeartbeat,
    ClientStatusChange,
    ConnectionClosed,
    ConnectionOpened,
    ConversationCreated,
    EdgeAlive,
    InboundEvent,
    SweepTick,
)
from presence.contacts import ContactBook
from presence.tracker import PresenceTracker

log = structlog.get_logger(__name__)


def presence_handler(
    tracker: PresenceTracker, contacts: ContactBook
) -> Callable[[InboundEvent], Awaitable[None]]:
    # Each branch reaches the tracker's per-user lock without awaiting anything first, which
    # keeps a user's events in the order the queue delivered them.
    async def handle(event: InboundEvent) -> None:
        match event:
            case ConnectionOpened():
                await tracker.connection_opened(event)
            case ConnectionClosed():
                await tracker.connection_closed(event)
            case ClientEvent(frame=ClientStatusChange(status=status)):
                await tracker.status_chosen(event, status, event.at)
            case ClientEvent(frame=ClientHeartbeat()):
                await tracker.activity(event, event.at)
            case EdgeAlive():
                await tracker.edge_alive(event)
            case ConversationCreated():
                contacts.forget(event.participant_ids)
            case SweepTick(partition=partition):
                await tracker.sweep(partition)
            case _:
                log.warning("event not for presence, ignored", kind=event.event)

    return handle
