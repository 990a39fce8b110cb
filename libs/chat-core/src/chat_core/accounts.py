"""Account flags as every admission reads them: cached per process, told of every change.

Every REST request and every socket is refused when its user is disabled, and reading the
flag was one database command per request. Each process now keeps the flags it has read for
at most `account_cache_seconds`, and forgets a user's at once when `chat-admin users
disable|enable` announces the change (`account.changed`, on each process's own queue),
which it does after writing the flag and before it returns. So a disable refuses the next
request everywhere within the broker's delivery time, and at worst (a process whose broker
link was down when it was announced) after the cache's lifetime. Cost of an admission: no
database command for a user seen within that lifetime, one `_id` lookup otherwise.
"""

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from time import monotonic

from chat_core import users
from chat_core.broker import SUBSCRIBED_EVENTS, Broker
from chat_core.db import Database
from chat_core.events import AccountChanged, InboundEvent, inbound_event_adapter, routing_kind

_REMEMBERED = 100_000


class Accounts:
    def __init__(self, db: Database, ttl_seconds: float) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._flags: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        # Bumped by every change announced: a read that started before one is not kept.
        self._changes = 0

    async def is_disabled(
        self, user_id: str, fetch: Callable[[str], Awaitable[bool]] | None = None
    ) -> bool:
        """The cached flag, or on a miss the stored one (`fetch`, default one `_id` lookup)."""
        cached = self._flags.get(user_id)
        if cached is not None and monotonic() - cached[1] < self._ttl:
            return cached[0]
        changes = self._changes
        read_at = monotonic()
        disabled = await (fetch(user_id) if fetch else users.is_disabled(self._db, user_id))
        if changes == self._changes and self._ttl > 0:
            self._flags[user_id] = (disabled, read_at)
            self._flags.move_to_end(user_id)
            while len(self._flags) > _REMEMBERED:
                self._flags.popitem(last=False)
        return disabled

    def forget(self, user_id: str | None = None) -> None:
        """Drop what is cached of one user, or of everyone."""
        self._changes += 1
        if user_id is None:
            self._flags.clear()
        else:
            self._flags.pop(user_id, None)

    async def listen(self, broker: Broker) -> None:
        """Follow announced changes; after a broker reconnect (announcements may have been
        missed meanwhile) forget everything."""

        async def on_change(envelope: InboundEvent) -> None:
            if isinstance(envelope, AccountChanged):
                self.forget(envelope.user_id)

        async def on_reconnect() -> None:
            self.forget()

        kinds = [routing_kind(event) for event in SUBSCRIBED_EVENTS]
        await broker.subscribe(kinds, inbound_event_adapter, on_change)
        broker.on_reconnect(on_reconnect)


async def announce_change(broker: Broker, user_id: str, disabled: bool) -> None:
    """Tell every process that `user_id`'s flags changed (confirmed by the broker)."""
    change = AccountChanged(user_id=user_id, disabled=disabled)
    await broker.publish_event(change, change.event)
