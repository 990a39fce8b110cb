"""Who a user's contacts are: everyone who shares a conversation with them.

Status changes are broadcast only through conversations of at most `broadcast_max_members`
members: in a group of 1,000, every member's status to every other member is a million
frames per reconnect wave, which is what large chat systems refuse to do. Members of larger
groups still see each other through the presence batch route and the edge's snapshot on
connect, which use all contacts.

Messaging records conversations per user (chat_core.contacts, one document per user read
by `_id`). Contacts are read often (each broadcast, each HTTP check) and
change rarely, so they are cached; `conversation.created` invalidates its participants and a
TTL covers the events another presence instance consumed.
"""

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from chat_core.contacts import ConversationIndex
from chat_core.db import Database

# Beyond this many cached users, expired entries are dropped; a bound, not a tuning knob.
MAX_CACHED_USERS = 100_000


@dataclass(frozen=True)
class Contacts:
    everyone: frozenset[str]
    # Those who hear this user's status changes: members of small enough conversations.
    broadcast: frozenset[str]


def contacts_from(
    user_id: str, conversations: Mapping[str, list[str]], broadcast_max_members: int
) -> Contacts:
    everyone: set[str] = set()
    broadcast: set[str] = set()
    for participants in conversations.values():
        everyone.update(participants)
        if len(participants) <= broadcast_max_members:
            broadcast.update(participants)
    everyone.discard(user_id)
    broadcast.discard(user_id)
    return Contacts(frozenset(everyone), frozenset(broadcast))


class ContactBook:
    def __init__(
        self,
        db: Database,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        broadcast_max_members: int = 100,
    ) -> None:
        self._index = ConversationIndex(db)
        self._ttl = ttl_seconds
        self._clock = clock
        self._broadcast_max_members = broadcast_max_members
        self._cache: dict[str, tuple[float, Contacts]] = {}
        # Bumped by every invalidation: a lookup that straddles one must not cache what it
        # read before the conversation existed.
        self._epoch = 0

    async def of(self, user_id: str) -> frozenset[str]:
        """Everyone who shares a conversation with the user."""
        return (await self._contacts(user_id)).everyone

    async def audience(self, user_id: str) -> frozenset[str]:
        """Who is told of the user's status changes."""
        return (await self._contacts(user_id)).broadcast

    async def _contacts(self, user_id: str) -> Contacts:
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        return await self._load(user_id)

    async def refresh(self, user_id: str) -> frozenset[str]:
        return (await self._load(user_id)).everyone

    async def _load(self, user_id: str) -> Contacts:
        epoch = self._epoch
        conversations = await self._index.conversations_of(user_id)
        found = contacts_from(user_id, conversations, self._broadcast_max_members)
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

    def _remember(self, user_id: str, contacts: Contacts) -> None:
        now = self._clock()
        if len(self._cache) >= MAX_CACHED_USERS:
            self._cache = {key: entry for key, entry in self._cache.items() if entry[0] > now}
            if len(self._cache) >= MAX_CACHED_USERS:
                self._cache.clear()
        self._cache[user_id] = (now + self._ttl, contacts)
