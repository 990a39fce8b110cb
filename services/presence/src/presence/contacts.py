"""Who a user's contacts are: everyone who shares a conversation with them.

Messaging records conversations per user (chat_core.contacts, one document per user read
by `_id`). Contacts are read often (each broadcast, each HTTP check) and
change rarely, so they are cached; `conversation.created` invalidates its participants and a
TTL covers the events another presence instance consumed.
"""

import time
from collections.abc import Callable, Iterable

from chat_core.contacts import ConversationIndex
from chat_core.db import Database

# Beyond this many cached users, expired entries are dropped; a bound, not a tuning knob.
MAX_CACHED_USERS = 100_000


class ContactBook:
    def __init__(
        self, db: Database, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._index = ConversationIndex(db)
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        # Bumped by every invalidation: a lookup that straddles one must not cache what it
        # read before the conversation existed.
        self._epoch = 0

    async def of(self, user_id: str) -> frozenset[str]:
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        return await self.refresh(user_id)

    async def refresh(self, user_id: str) -> frozenset[str]:
        epoch = self._epoch
        found = await self._index.contacts_of(user_id)
        if epoch == self._epoch and self._ttl > 0:
            self._remember(user_id, found)
        return found

    async def visible_to(self, viewer: str, targets: Iterable[str]) -> set[str]:
        """Those of `targets` the viewer may look at: themself and their contacts."""
        wanted = set(targets)
        others = wanted - {viewer}
        contacts = await self.of(viewer)
        if not others <= contacts:
            # A refusal is worth one fresh read: the conversation may be seconds old.
            contacts = await self.refresh(viewer)
        return wanted & (contacts | {viewer})

    def forget(self, user_ids: Iterable[str]) -> None:
        self._epoch += 1
        for user_id in user_ids:
            self._cache.pop(user_id, None)

    def _remember(self, user_id: str, contacts: frozenset[str]) -> None:
        now = self._clock()
        if len(self._cache) >= MAX_CACHED_USERS:
            self._cache = {key: entry for key, entry in self._cache.items() if entry[0] > now}
            if len(self._cache) >= MAX_CACHED_USERS:
                self._cache.clear()
        self._cache[user_id] = (now + self._ttl, contacts)
