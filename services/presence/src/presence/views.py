"""What a viewer may see of someone's presence over HTTP."""

from collections.abc import Iterable
from typing import Protocol

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from chat_core.clock import isoformat
from chat_core.events import Status
from presence.contacts import ContactBook
from presence.state import Presence


class PresenceReader(Protocol):
    async def read_many(self, user_ids: Iterable[str]) -> list[Presence]: ...


class PresenceView(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, frozen=True)

    user_id: str
    status: Status
    last_active_at: str | None
    devices: int


class PresenceList(BaseModel):
    items: list[PresenceView]


def view_of(presence: Presence, viewer: str) -> PresenceView:
    last_active_at = presence.last_active_at
    devices = len(presence.connections)
    if presence.status == "offline" and viewer != presence.user_id:
        # Appearing offline hides the devices and the activity since, from everyone else.
        last_active_at = presence.shown_last_active_at
        devices = 0
    return PresenceView(
        user_id=presence.user_id,
        status=presence.effective,
        last_active_at=isoformat(last_active_at) if last_active_at else None,
        devices=devices,
    )


async def visible_presence(
    viewer: str, user_ids: list[str], contacts: ContactBook, presences: PresenceReader
) -> list[PresenceView]:
    """The presence of those of `user_ids` the viewer may see (self, contacts), in order:
    what this process holds from memory, the others as stored (presence.store)."""
    allowed = await contacts.visible_to(viewer, user_ids)
    shown = [user_id for user_id in dict.fromkeys(user_ids) if user_id in allowed]
    return [view_of(presence, viewer) for presence in await presences.read_many(shown)]
