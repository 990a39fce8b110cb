"""Applying presence events: load, transition, store conditionally, then tell people.

Per user, events are applied one at a time in arrival order (a KeyedLock) and every write is
conditional on the revision it was computed from (PresenceRepository), so several presence
instances stay consistent. Contacts are told only after the new state is stored; the stored
`announced` status is the outbox: a failure before it is updated leaves the broadcast
pending, and the redelivered event or the next sweep sends it.
"""

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import structlog

from chat_core.broker import Broker
from chat_core.clock import to_milliseconds, utcnow
from chat_core.close_codes import CloseCode
from chat_core.events import (
    ConnectionClosed,
    ConnectionOpened,
    ConnectionRef,
    Deliver,
    Disconnect,
    EdgeAlive,
    Status,
    StatusChangeAck,
    UserStatusChange,
)
from chat_core.keyed_lock import KeyedLock
from presence import state
from presence.contacts import ContactBook
from presence.edges import EdgeRepository
from presence.repository import PresenceRepository
from presence.state import EdgeSeen, Presence, Timeouts

log = structlog.get_logger(__name__)

# Each attempt follows a write by another instance to the same user: many in a row means
# something is badly wrong, and the consumer should retry the message later instead.
MAX_ATTEMPTS = 20
SWEEP_PARALLELISM = 16
# An edge silent this long is forgotten; its connections were expired long before.
FORGET_EDGES_AFTER = timedelta(hours=1)

# Given the stored state, the current time and whether the event's edge may still hold the
# connection, the new state.
Change = Callable[[Presence, datetime, bool], Presence]


class ConcurrentUpdates(Exception):
    pass


class PresenceTracker:
    def __init__(
        self,
        presences: PresenceRepository,
        edges: EdgeRepository,
        contacts: ContactBook,
        broker: Broker,
        timeouts: Timeouts,
        clock: Callable[[], datetime] = utcnow,
        max_devices: int | None = None,
    ) -> None:
        self._presences = presences
        self._edges = edges
        self._contacts = contacts
        self._broker = broker
        self._timeouts = timeouts
        self._clock = clock
        self._max_devices = max_devices
        self._locks = KeyedLock()
        self.watching_since = self._now()

    def _now(self) -> datetime:
        return to_milliseconds(self._clock())

    # --- events from edges ---------------------------------------------------------------

    async def connection_opened(self, opened: ConnectionOpened) -> None:
        at = to_milliseconds(opened.at)
        evicted: list[str] = []

        def change(presence: Presence, now: datetime, live: bool) -> Presence:
            nonlocal evicted
            after = state.open_connection(
                presence,
                opened.connection_id,
                opened.edge_id,
                at,
                now,
                self._timeouts,
                edge_live=live,
            )
            if self._max_devices is None:
                return after
            after, evicted = state.evict_oldest(after, self._max_devices, at, now, self._timeouts)
            return after

        await self._apply(opened, at, change)
        # Presence sees every edge, so it is the one that can count a user's sockets. If
        # this publish fails the event is retried, but the eviction is already stored: the
        # socket then lives until its client goes, uncounted (rare, and never a loop).
        for connection_id in evicted:
            log.info(
                "too many sockets: closing the oldest",
                user_id=opened.user_id,
                connection_id=connection_id,
                limit=self._max_devices,
            )
            await self._broker.deliver(
                [opened.user_id],
                Disconnect(
                    code=CloseCode.TOO_MANY_SOCKETS,
                    reason=f"too many sockets for this user (at most {self._max_devices}); "
                    "this was the oldest",
                    connection_id=connection_id,
                ),
            )

    async def connection_closed(self, closed: ConnectionClosed) -> None:
        at = to_milliseconds(closed.at)
        await self._apply(
            closed,
            at,
            lambda p, now, _live: state.close_connection(
                p, closed.connection_id, at, now, self._timeouts
            ),
        )

    async def activity(self, ref: ConnectionRef, at: datetime) -> None:
        at = to_milliseconds(at)
        await self._apply(
            ref,
            at,
            lambda p, now, live: state.record_activity(
                p, ref.connection_id, ref.edge_id, at, now, self._timeouts, edge_live=live
            ),
        )

    async def status_chosen(self, ref: ConnectionRef, status: Status, at: datetime) -> None:
        at = to_milliseconds(at)
        ack = Deliver(frame=StatusChangeAck(status=status), connection_id=ref.connection_id)
        await self._apply(
            ref,
            at,
            lambda p, now, live: state.choose_status(
                p, status, ref.connection_id, ref.edge_id, at, now, self._timeouts, edge_live=live
            ),
            # Acknowledged even when nothing changed: the choice is stored either way.
            ack=ack,
        )

    async def edge_alive(self, alive: EdgeAlive) -> None:
        await self._edges.record_alive(
            alive.edge_id, to_milliseconds(alive.at), alive.connections, self._now()
        )

    # --- the sweep -----------------------------------------------------------------------

    async def sweep(self, partition: int | None = None) -> int:
        """Expire stale connections and send pending broadcasts; how many were sent.

        With a partition, only the users of that partition: the caller consumes it, so it is
        the one writer of their presence.
        """
        now = self._now()
        edges = await self._edges.all()
        await self._edges.forget_silent(edges, now, FORGET_EDGES_AFTER)
        topology = self._broker.topology
        due = [
            snapshot.user_id
            for snapshot in await self._presences.watched()
            if (partition is None or topology.partition_of(snapshot.user_id) == partition)
            and (
                snapshot.pending is not None
                or state.stale_connections(
                    snapshot, edges, now, self._timeouts, self.watching_since
                )
            )
        ]
        # A dead edge can leave thousands of users to expire at once: some in parallel, and
        # one user's failure does not hold up the others.
        slots = asyncio.Semaphore(SWEEP_PARALLELISM)

        async def expire(user_id: str) -> int:
            async with slots:
                try:
                    return await self._expire_stale(user_id, edges)
                except Exception:
                    log.warning("sweep of user failed", user_id=user_id, exc_info=True)
                    return 0

        return sum(await asyncio.gather(*(expire(user_id) for user_id in due)))

    async def _expire_stale(self, user_id: str, edges: Mapping[str, EdgeSeen]) -> int:
        def expire(presence: Presence, now: datetime, _live: bool) -> Presence:
            # Decided again on the stored state: a heartbeat may have arrived since the scan.
            stale = state.stale_connections(
                presence, edges, now, self._timeouts, self.watching_since
            )
            if stale:
                log.info("connections expired", user_id=user_id, connections=stale)
            return state.expire_connections(presence, stale)

        async with self._locks(user_id):
            presence = await self._store(user_id, expire)
            return await self._announce(presence)

    # --- storing and telling -------------------------------------------------------------

    async def _apply(
        self, ref: ConnectionRef, at: datetime, change: Change, ack: Deliver | None = None
    ) -> None:
        async with self._locks(ref.user_id):
            presence = await self._store(ref.user_id, change, sender=(ref, at))
            if ack is not None:
                await self._broker.deliver([ref.user_id], ack)
            await self._announce(presence)

    async def _store(
        self,
        user_id: str,
        change: Change,
        sender: tuple[ConnectionRef, datetime] | None = None,
    ) -> Presence:
        for _ in range(MAX_ATTEMPTS):
            now = self._now()
            before = await self._presences.load(user_id)
            live = True
            if sender is not None and not before.knows(sender[0].connection_id):
                # Only a connection presence has not seen yet needs its edge vouched for.
                ref, at = sender
                live = state.edge_is_live(
                    await self._edges.get(ref.edge_id), at, now, self._timeouts
                )
            after = change(before, now, live)
            if after == before:
                return before
            stored = await self._presences.save(before, after, now)
            if stored is not None:
                return stored
        raise ConcurrentUpdates(f"presence of {user_id} kept changing under us")

    async def _announce(self, presence: Presence) -> int:
        """Tell the user's contacts their pending status, if any; 1 if told, else 0."""
        status = presence.pending
        if status is None:
            return 0
        contacts = await self._contacts.audience(presence.user_id)
        if contacts:
            change = UserStatusChange(user_id=presence.user_id, status=status)
            await self._broker.deliver(contacts, Deliver(frame=change))
        # If this loses to a newer write, that writer sees the status as pending and tells.
        await self._presences.mark_announced(presence, status)
        log.info(
            "status broadcast", user_id=presence.user_id, status=status, contacts=len(contacts)
        )
        return 1
