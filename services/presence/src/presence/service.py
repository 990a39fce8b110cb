"""What one presence process holds: storage, the contact cache, the tracker, who it admits."""

from dataclasses import dataclass
from datetime import timedelta

from chat_core.auth import Authenticator
from chat_core.runtime import Runtime
from presence.config import PresenceSettings
from presence.contacts import ContactBook
from presence.edges import EdgeRepository
from presence.repository import PresenceRepository
from presence.state import Timeouts
from presence.tracker import PresenceTracker


def timeouts_of(settings: PresenceSettings) -> Timeouts:
    return Timeouts(
        edge=timedelta(seconds=settings.edge_timeout_seconds),
        idle=timedelta(seconds=settings.connection_idle_timeout_seconds),
    )


@dataclass
class PresenceService:
    settings: PresenceSettings
    runtime: Runtime
    authenticator: Authenticator
    presences: PresenceRepository
    contacts: ContactBook
    tracker: PresenceTracker
    consuming: bool = False

    @classmethod
    def build(
        cls, settings: PresenceSettings, runtime: Runtime, authenticator: Authenticator
    ) -> "PresenceService":
        presences = PresenceRepository(runtime.db)
        contacts = ContactBook(
            runtime.db,
            settings.contacts_cache_seconds,
            broadcast_max_members=settings.broadcast_max_members,
        )
        tracker = PresenceTracker(
            presences,
            EdgeRepository(runtime.db),
            contacts,
            runtime.broker,
            timeouts_of(settings),
            max_devices=settings.max_devices_per_user,
        )
        return cls(settings, runtime, authenticator, presences, contacts, tracker)

    async def readiness(self) -> dict[str, bool]:
        checks = await self.runtime.readiness()
        checks["consumer"] = self.consuming
        return checks
