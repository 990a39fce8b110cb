"""A user's presence as plain data, and how each event changes it. No I/O here.

Every transition is idempotent (applying an event twice gives the state applying it once
gives) and tolerant of reordering: connections are keyed by id, a closed connection leaves a
tombstone so a late `conn.opened` or heartbeat cannot bring it back, and a status choice
older than the stored one is ignored.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from chat_core.events import Status

# Tombstones are capped so a reconnect loop cannot grow one document without bound.
MAX_TOMBSTONES = 200


@dataclass(frozen=True)
class Timeouts:
    edge: timedelta
    idle: timedelta

    @property
    def tombstone(self) -> timedelta:
        # Events older than `idle` never add a connection (see `_is_stale`), so a tombstone
        # only has to outlive that window; twice is the margin.
        return 2 * self.idle


@dataclass(frozen=True)
class Link:
    """One live connection and the edge holding it."""

    edge_id: str
    opened_at: datetime
    last_active_at: datetime


@dataclass(frozen=True)
class EdgeSeen:
    """What presence knows of an edge process."""

    # Presence's clock: when its last announcement was consumed.
    last_seen_at: datetime
    # The edge's clock: the latest announcement in which it held no connection at all.
    empty_at: datetime | None = None


@dataclass(frozen=True)
class Presence:
    user_id: str
    status: Status = "available"
    status_at: datetime | None = None
    connections: Mapping[str, Link] = field(default_factory=dict)
    closed: Mapping[str, datetime] = field(default_factory=dict)
    last_active_at: datetime | None = None
    # What contacts may see: it stands still while the user appears offline.
    shown_last_active_at: datetime | None = None
    # The effective status contacts were last told.
    announced: Status = "offline"
    # Optimistic-concurrency revision of the stored document; 0 means never stored.
    rev: int = 0

    @property
    def effective(self) -> Status:
        return self.status if self.connections else "offline"

    @property
    def pending(self) -> Status | None:
        """The effective status contacts have not been told yet, if any."""
        return None if self.effective == self.announced else self.effective

    def knows(self, connection_id: str) -> bool:
        return connection_id in self.connections or connection_id in self.closed


def edge_is_live(edge: EdgeSeen | None, at: datetime, now: datetime, timeouts: Timeouts) -> bool:
    """Whether a connection that sent an event at `at` may still be held by its edge."""
    if edge is None:
        # A new edge's first announcement may still be on its way; the sweep catches an
        # edge that never announces at all.
        return True
    if edge.empty_at is not None and at < edge.empty_at:
        return False
    # The event itself proves the edge was alive at `at`.
    return now - max(edge.last_seen_at, at) <= timeouts.edge


def open_connection(
    presence: Presence,
    connection_id: str,
    edge_id: str,
    at: datetime,
    now: datetime,
    timeouts: Timeouts,
    *,
    edge_live: bool = True,
) -> Presence:
    if presence.knows(connection_id) or not edge_live or _is_stale(at, now, timeouts):
        return presence
    link = Link(edge_id=edge_id, opened_at=at, last_active_at=at)
    opened = replace(presence, connections={**presence.connections, connection_id: link})
    return _touch(opened, at, visible=presence.status != "offline")


def close_connection(
    presence: Presence, connection_id: str, at: datetime, now: datetime, timeouts: Timeouts
) -> Presence:
    if connection_id in presence.closed:
        return presence
    closed = _prune({**presence.closed, connection_id: at}, now, timeouts)
    remaining = {cid: link for cid, link in presence.connections.items() if cid != connection_id}
    after = replace(presence, connections=remaining, closed=closed)
    if connection_id in presence.connections:
        after = _touch(after, at, visible=presence.status != "offline")
    return after


def evict_oldest(
    presence: Presence, keep: int, at: datetime, now: datetime, timeouts: Timeouts
) -> tuple[Presence, list[str]]:
    """Close the oldest connections (by admission time, then id) until `keep` remain.

    The newest stay: a phone that reconnects after a dead network gets in, and its stale
    socket is the one that goes. Closed ones leave tombstones, so the edge's own
    `conn.closed` for them later changes nothing.
    """
    excess = len(presence.connections) - keep
    if excess <= 0:
        return presence, []
    by_age = sorted(presence.connections.items(), key=lambda item: (item[1].opened_at, item[0]))
    evicted = [connection_id for connection_id, _link in by_age[:excess]]
    for connection_id in evicted:
        presence = close_connection(presence, connection_id, at, now, timeouts)
    return presence, evicted


def record_activity(
    presence: Presence,
    connection_id: str,
    edge_id: str,
    at: datetime,
    now: datetime,
    timeouts: Timeouts,
    *,
    edge_live: bool = True,
) -> Presence:
    """A heartbeat (or other sign of life) from one connection.

    An unknown connection that was never closed is revived: it was expired for idleness, or
    its `conn.opened` is still behind this event in the queue.
    """
    link = presence.connections.get(connection_id)
    if link is None:
        return open_connection(
            presence, connection_id, edge_id, at, now, timeouts, edge_live=edge_live
        )
    if at <= link.last_active_at:
        return presence
    connections = {**presence.connections, connection_id: replace(link, last_active_at=at)}
    return _touch(
        replace(presence, connections=connections), at, visible=presence.status != "offline"
    )


def choose_status(
    presence: Presence,
    status: Status,
    connection_id: str,
    edge_id: str,
    at: datetime,
    now: datetime,
    timeouts: Timeouts,
    *,
    edge_live: bool = True,
) -> Presence:
    active = record_activity(
        presence, connection_id, edge_id, at, now, timeouts, edge_live=edge_live
    )
    if presence.status_at is not None and at < presence.status_at:
        # A choice made before the stored one, delivered late: the newer choice stands.
        return active
    chosen = replace(active, status=status, status_at=at)
    if status != "offline" and presence.status == "offline":
        # Coming back from appearing offline: contacts may see activity again from now.
        chosen = _touch(chosen, at, visible=True)
    return chosen


def expire_connections(presence: Presence, connection_ids: list[str]) -> Presence:
    """Drop connections presence no longer believes in; no tombstone, so they may revive."""
    if not connection_ids:
        return presence
    gone = set(connection_ids)
    remaining = {cid: link for cid, link in presence.connections.items() if cid not in gone}
    return replace(presence, connections=remaining)


def mark_announced(presence: Presence, status: Status) -> Presence:
    return replace(presence, announced=status)


def stale_connections(
    presence: Presence,
    edges: Mapping[str, EdgeSeen],
    now: datetime,
    timeouts: Timeouts,
    watching_since: datetime,
) -> list[str]:
    """Connections whose edge went silent or emptied, or which have been idle too long.

    `watching_since` is when this process started listening: nothing counts as silent for
    longer than we could have heard it, so a restarted presence does not expire everyone.
    """
    stale = []
    for connection_id, link in presence.connections.items():
        edge = edges.get(link.edge_id)
        if edge is not None and edge.empty_at is not None and link.opened_at < edge.empty_at:
            stale.append(connection_id)
            continue
        # An edge never heard from counts from the connection's own opening.
        heard_at = edge.last_seen_at if edge is not None else link.opened_at
        if now - max(heard_at, watching_since) > timeouts.edge:
            stale.append(connection_id)
        elif now - max(link.last_active_at, watching_since) > timeouts.idle:
            stale.append(connection_id)
    return stale


def _is_stale(at: datetime, now: datetime, timeouts: Timeouts) -> bool:
    # An event this old cannot bring a connection to life: the sweep would expire it again
    # at once, and its tombstone (if it was closed) may already be pruned.
    return now - at > timeouts.idle


def _touch(presence: Presence, at: datetime, *, visible: bool) -> Presence:
    shown = presence.shown_last_active_at
    return replace(
        presence,
        last_active_at=_latest(presence.last_active_at, at),
        shown_last_active_at=_latest(shown, at) if visible else shown,
    )


def _latest(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at > current else current


def _prune(
    closed: Mapping[str, datetime], now: datetime, timeouts: Timeouts
) -> dict[str, datetime]:
    kept = sorted(
        ((cid, at) for cid, at in closed.items() if now - at <= timeouts.tombstone),
        key=lambda item: item[1],
    )
    return dict(kept[-MAX_TOMBSTONES:])
