"""Applying presence events: transition in memory, store behind, then tell people.

Per user, events are applied one at a time in arrival order (a KeyedLock) to the state this
process holds (presence.store): no database read once a user is held, and the write goes
behind in a batch with everyone else's. A handler returns (and the consumer acknowledges
the event) only once the change is stored, so a crash loses no acknowledged event.
Contacts are told only after the state is stored; the stored `announced` status is the
outbox: a failure before it is updated leaves the broadcast pending, and the redelivered
event or the next sweep sends it.
"""

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import structlog

from chat_core.broker import Broker, Requeue
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
from presence.store import PresenceStore

log = structlog.get_logger(__name__)

# An announcement waits for the user's state to be stored; this many changes arriving while
# it waits means it should be retried later instead.
MAX_ATTEMPTS = 20
SWEEP_PARALLELISM = 16
# An edge silent this long is forgotten; its connections were expired long before.
FORGET_EDGES_AFTER = timedelta(hours=1)

# Given the stored state, the current time and whether the event's edge may still hold the
# connection, the new state.
Change = Callable[[Presence, datetime, bool], Presence]


class ConcurrentUpdates(Requeue):
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
        *,
        store: PresenceStore | None = None,
    ) -> None:
        self._presences = presences
        self.store = store or PresenceStore(presences.db, now=lambda: self._now())
        self._edges = edges
        # Every edge this process has heard of, refreshed from the database by each sweep
        # (another instance may consume an announcement); None: asked, never announced.
        self._edge_seen: dict[str, EdgeSeen | None] = {}
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
        at, now = to_milliseconds(alive.at), self._now()
        await self._edges.record_alive(alive.edge_id, at, alive.connections, now)
        known = self._edge_seen.get(alive.edge_id)
        empty_at = known.empty_at if known is not None else None
        if alive.connections == 0 and (empty_at is None or at > empty_at):
            empty_at = at
        last_seen = now if known is None else max(known.last_seen_at, now)
        self._edge_seen[alive.edge_id] = EdgeSeen(last_seen_at=last_seen, empty_at=empty_at)

    async def _edge(self, edge_id: str) -> EdgeSeen | None:
        """What is known of an edge: from memory, else one `_id` lookup (remembered)."""
        if edge_id in self._edge_seen:
            return self._edge_seen[edge_id]
        seen = await self._edges.get(edge_id)
        self._edge_seen[edge_id] = seen
        return seen

    # --- the sweep -----------------------------------------------------------------------

    async def sweep(self, partition: int | None = None) -> int:
        """Expire stale connections and send pending broadcasts; how many were sent.

        Over the users held in memory: the first sweep (of each partition) after a start or
        a lost broker connection first adopts the stored users the sweep must watch (one scan
        of the collection), later ones read no presence from the database. With a
        partition, only the users of that partition: the caller consumes it, so it is the one
        writer of their presence.
        """
        now = self._now()
        edges = await self._edges.all()
        self._edge_seen = dict(edges)
        await self._edges.forget_silent(edges, now, FORGET_EDGES_AFTER)
        topology = self._broker.topology

        def owns(user_id: str) -> bool:
            return partition is None or topology.partition_of(user_id) == partition

        if partition not in self.store.adopted:
            adopted = await self.store.adopt_watched(partition, owns)
            log.info("presence adopted from the database", partition=partition, users=adopted)
        due = [
            presence.user_id
            for presence in self.store.held()
            if owns(presence.user_id)
            and (
                presence.pending is not None
                or state.stale_connections(
                    presence, edges, now, self._timeouts, self.watching_since
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

        told = sum(await asyncio.gather(*(expire(user_id) for user_id in due)))
        self.store.evict_idle()
        return told

    async def _expire_stale(self, user_id: str, edges: Mapping[str, EdgeSeen]) -> int:
        def expire(presence: Presence, now: datetime, _live: bool) -> Presence:
            # Decided again on the current state: a heartbeat may have arrived since the scan.
            stale = state.stale_connections(
                presence, edges, now, self._timeouts, self.watching_since
            )
            if stale:
                log.info("connections expired", user_id=user_id, connections=stale)
            return state.expire_connections(presence, stale)

        async with self._locks(user_id):
            stored, _became = await self._change(user_id, expire)
        if stored is not None:
            await stored
        return await self._announce(user_id)

    # --- storing and telling -------------------------------------------------------------

    async def _apply(
        self, ref: ConnectionRef, at: datetime, change: Change, ack: Deliver | None = None
    ) -> None:
        async with self._locks(ref.user_id):
            stored, became = await self._change(ref.user_id, change, sender=(ref, at))
        if stored is not None:
            # The change, and any change before it still in flight, is in the database.
            await stored
        if ack is not None:
            await self._broker.deliver([ref.user_id], ack)
        if became is not None:
            await self._announce(ref.user_id, became)

    async def _change(
        self,
        user_id: str,
        change: Change,
        sender: tuple[ConnectionRef, datetime] | None = None,
    ) -> tuple["asyncio.Future[None] | None", Status | None]:
        """Apply `change` to the user's held state (under the caller's per-user lock).

        Returns a future that completes when the state is stored (None if nothing is
        unwritten), and the effective status this change made, if it made one: each event's
        own transition is announced, so contacts see every change in order even when several
        events of the user go in one write.
        """
        now = self._now()
        before = await self.store.get(user_id)
        live = True
        if sender is not None and not before.knows(sender[0].connection_id):
            # Only a connection presence has not seen yet needs its edge vouched for.
            ref, at = sender
            live = state.edge_is_live(await self._edge(ref.edge_id), at, now, self._timeouts)
        after = change(before, now, live)
        if after == before:
            return self.store.unwritten(user_id), None
        became = after.effective if after.effective != before.effective else None
        if after.pending is not None and not await self._contacts.audience(user_id):
            # Nobody to tell: the change and its `announced` mark are one write.
            after = state.mark_announced(after, after.effective)
        return self.store.put(user_id, after), became

    async def _announce(self, user_id: str, status: Status | None = None) -> int:
        """Tell the user's contacts `status` (or, with None, whatever status of theirs is
        pending) unless they were told it last; only once the state is stored. 1 if told."""
        for _ in range(MAX_ATTEMPTS):
            unwritten = self.store.unwritten(user_id)
            if status is None and unwritten is not None:
                # A pending status is announced only once the state making it so is stored.
                await unwritten
            async with self._locks(user_id):
                if status is None and self.store.unwritten(user_id) is not None:
                    continue  # changed again meanwhile: wait for that write too
                presence = self.store.peek(user_id)
                if presence is None:
                    # Dropped after a failed write: the event comes again, or the sweep sees it.
                    return 0
                telling = presence.pending if status is None else status
                if telling is None or telling == presence.announced:
                    return 0
                contacts = await self._contacts.audience(user_id)
                if contacts:
                    change = UserStatusChange(user_id=user_id, status=telling)
                    await self._broker.deliver(contacts, Deliver(frame=change))
                # Written behind: if it is lost, the change is broadcast again (a duplicate).
                self.store.put_if_unchanged(
                    user_id, presence, state.mark_announced(presence, telling)
                )
                log.debug(
                    "status broadcast", user_id=user_id, status=telling, contacts=len(contacts)
                )
                return 1
        raise ConcurrentUpdates(f"presence of {user_id} kept changing while it was announced")
