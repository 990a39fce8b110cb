"""Presence state transitions: given a state and an event, the new state and what is broadcast."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from chat_core.events import STATUSES, Status
from presence import state
from presence.state import EdgeSeen, Link, Presence, Timeouts

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TIMEOUTS = Timeouts(edge=timedelta(seconds=30), idle=timedelta(seconds=120))
USER = "+84900000001"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def told(presence: Presence) -> Presence:
    """The state after its pending broadcast was sent."""
    return state.mark_announced(presence, presence.effective)


def opened(presence: Presence, connection_id: str, seconds: float, edge: str = "e1") -> Presence:
    return state.open_connection(presence, connection_id, edge, at(seconds), at(seconds), TIMEOUTS)


def closed(presence: Presence, connection_id: str, seconds: float) -> Presence:
    return state.close_connection(presence, connection_id, at(seconds), at(seconds), TIMEOUTS)


def chosen(presence: Presence, status: Status, seconds: float, connection_id: str) -> Presence:
    return state.choose_status(
        presence, status, connection_id, "e1", at(seconds), at(seconds), TIMEOUTS
    )


def test_first_connection_comes_online_as_available() -> None:
    after = opened(Presence(USER), "c1", 0)

    assert after.effective == "available"
    assert after.pending == "available"
    assert after.connections == {"c1": Link("e1", at(0), at(0))}
    assert after.last_active_at == at(0)


def test_first_connection_comes_back_with_the_last_chosen_status() -> None:
    away = told(closed(chosen(told(opened(Presence(USER), "c1", 0)), "away", 1, "c1"), "c1", 2))
    assert away.effective == "offline"

    back = opened(away, "c2", 10)

    assert back.pending == "away"


def test_second_device_and_its_close_broadcast_nothing() -> None:
    one = told(opened(Presence(USER), "c1", 0))

    two = opened(one, "c2", 1)
    assert two.pending is None
    assert set(two.connections) == {"c1", "c2"}

    back_to_one = closed(told(two), "c1", 2)
    assert back_to_one.pending is None
    assert set(back_to_one.connections) == {"c2"}


def test_last_close_broadcasts_offline() -> None:
    one = told(opened(Presence(USER), "c1", 0))

    after = closed(one, "c1", 5)

    assert after.pending == "offline"
    assert after.connections == {}
    assert after.last_active_at == at(5)


@pytest.mark.parametrize("status", STATUSES)
def test_each_chosen_status_is_broadcast_once(status: Status) -> None:
    # Start from a different status so every one of the four is a change.
    start: Status = "busy" if status != "busy" else "away"
    online = told(chosen(told(opened(Presence(USER), "c1", 0)), start, 1, "c1"))

    after = chosen(online, status, 2, "c1")
    assert after.status == status
    assert after.pending == status

    again = chosen(told(after), status, 3, "c1")
    assert again.pending is None


def test_late_close_of_an_old_connection_keeps_a_newer_one_online() -> None:
    both = told(opened(opened(Presence(USER), "old", 0), "new", 5))

    after = closed(both, "old", 1)

    assert after.pending is None
    assert set(after.connections) == {"new"}


def test_close_before_open_leaves_a_tombstone_the_open_cannot_pass() -> None:
    after_close = closed(Presence(USER), "c1", 1)
    assert after_close.pending is None

    after_open = opened(after_close, "c1", 0)

    assert after_open.connections == {}
    assert after_open.pending is None


def test_every_event_is_idempotent() -> None:
    start = told(opened(Presence(USER), "c0", 0))
    events: list[Callable[[Presence], Presence]] = [
        lambda p: opened(p, "c1", 1),
        lambda p: closed(p, "c1", 2),
        lambda p: chosen(p, "busy", 3, "c0"),
        lambda p: state.record_activity(p, "c0", "e1", at(4), at(4), TIMEOUTS),
    ]
    for event in events:
        once = event(start)
        assert event(once) == once
        start = told(once)


def test_an_older_status_choice_delivered_late_does_not_win() -> None:
    online = told(opened(Presence(USER), "c1", 0))
    busy = told(chosen(online, "busy", 10, "c1"))

    late = state.choose_status(busy, "away", "c1", "e1", at(5), at(11), TIMEOUTS)

    assert late.status == "busy"
    assert late.pending is None


def test_heartbeat_moves_last_active_forward_only() -> None:
    online = told(opened(Presence(USER), "c1", 0))

    later = state.record_activity(online, "c1", "e1", at(30), at(30), TIMEOUTS)
    assert later.last_active_at == at(30)
    assert later.connections["c1"].last_active_at == at(30)
    assert later.pending is None

    earlier = state.record_activity(later, "c1", "e1", at(20), at(31), TIMEOUTS)
    assert earlier == later


def test_heartbeat_revives_an_expired_connection_but_not_a_closed_one() -> None:
    online = told(opened(Presence(USER), "c1", 0))
    expired = state.expire_connections(online, ["c1"])
    assert expired.pending == "offline"

    revived = state.record_activity(told(expired), "c1", "e1", at(130), at(130), TIMEOUTS)
    assert set(revived.connections) == {"c1"}
    assert revived.pending == "available"

    gone = told(closed(online, "c1", 5))
    assert state.record_activity(gone, "c1", "e1", at(6), at(6), TIMEOUTS) == gone


def test_heartbeat_from_a_dead_edge_does_not_revive() -> None:
    offline = told(state.expire_connections(told(opened(Presence(USER), "c1", 0)), ["c1"]))

    after = state.record_activity(offline, "c1", "e1", at(5), at(6), TIMEOUTS, edge_live=False)

    assert after == offline


def test_events_too_old_to_trust_add_no_connection() -> None:
    after = state.open_connection(Presence(USER), "c1", "e1", at(0), at(121), TIMEOUTS)

    assert after.connections == {}


def test_appear_offline_is_offline_to_contacts_while_connected() -> None:
    online = told(opened(Presence(USER), "c1", 0))

    hidden = chosen(online, "offline", 10, "c1")
    assert hidden.pending == "offline"
    assert hidden.shown_last_active_at == at(10)

    active = state.record_activity(told(hidden), "c1", "e1", at(40), at(40), TIMEOUTS)
    assert active.last_active_at == at(40)
    assert active.shown_last_active_at == at(10)

    # Closing while hidden changes nothing contacts can see.
    assert closed(told(active), "c1", 50).pending is None


def test_tombstones_are_pruned_by_age_and_capped() -> None:
    presence = Presence(USER)
    for number in range(state.MAX_TOMBSTONES + 10):
        presence = closed(presence, f"c{number}", number)
    assert len(presence.closed) == state.MAX_TOMBSTONES
    assert f"c{state.MAX_TOMBSTONES + 9}" in presence.closed

    much_later = state.close_connection(presence, "last", at(10_000), at(10_000), TIMEOUTS)
    assert set(much_later.closed) == {"last"}


class TestStaleConnections:
    online = told(opened(opened(Presence(USER), "c1", 0, edge="e1"), "c2", 0, edge="e2"))

    def stale(self, edges: dict[str, EdgeSeen], now: float, since: float = -1000) -> list[str]:
        return sorted(state.stale_connections(self.online, edges, at(now), TIMEOUTS, at(since)))

    def test_silent_edge_expires_its_connections_only(self) -> None:
        edges = {"e1": EdgeSeen(last_seen_at=at(0)), "e2": EdgeSeen(last_seen_at=at(25))}

        assert self.stale(edges, now=30) == []
        assert self.stale(edges, now=31) == ["c1"]

    def test_edge_never_heard_from_counts_from_the_connection_opening(self) -> None:
        edges = {"e2": EdgeSeen(last_seen_at=at(60))}

        assert self.stale(edges, now=30) == []
        assert self.stale(edges, now=31) == ["c1"]

    def test_edge_that_announced_no_connections_after_opening_lost_them(self) -> None:
        edges = {
            "e1": EdgeSeen(last_seen_at=at(5), empty_at=at(5)),
            "e2": EdgeSeen(last_seen_at=at(5), empty_at=at(-1)),
        }

        assert self.stale(edges, now=6) == ["c1"]

    def test_idle_connection_expires_even_on_a_live_edge(self) -> None:
        edges = {"e1": EdgeSeen(last_seen_at=at(125)), "e2": EdgeSeen(last_seen_at=at(125))}
        busy = state.record_activity(self.online, "c2", "e2", at(100), at(100), TIMEOUTS)

        assert self.stale(edges, now=120) == []
        assert sorted(state.stale_connections(busy, edges, at(121), TIMEOUTS, at(-1))) == ["c1"]

    def test_nothing_is_silent_for_longer_than_we_have_been_listening(self) -> None:
        edges = {"e1": EdgeSeen(last_seen_at=at(0)), "e2": EdgeSeen(last_seen_at=at(0))}

        assert self.stale(edges, now=200, since=190) == []
        assert self.stale(edges, now=221, since=190) == ["c1", "c2"]


@pytest.mark.parametrize(
    ("edge", "event_at", "now", "live"),
    [
        (None, 0, 100, True),
        (EdgeSeen(last_seen_at=at(90)), 0, 100, True),
        (EdgeSeen(last_seen_at=at(0)), 0, 31, False),
        (EdgeSeen(last_seen_at=at(0)), 80, 100, True),
        (EdgeSeen(last_seen_at=at(99), empty_at=at(50)), 40, 100, False),
        (EdgeSeen(last_seen_at=at(99), empty_at=at(50)), 60, 100, True),
    ],
)
def test_edge_is_live(edge: EdgeSeen | None, event_at: float, now: float, live: bool) -> None:
    assert state.edge_is_live(edge, at(event_at), at(now), TIMEOUTS) is live


def test_expiring_nothing_is_no_change() -> None:
    online = told(opened(Presence(USER), "c1", 0))

    assert state.expire_connections(online, []) is online


def test_one_socket_too_many_closes_the_oldest_by_admission_time() -> None:
    presence = Presence(USER)
    presence = opened(presence, "laptop", 1)
    presence = opened(presence, "phone-stale", 0, edge="e2")  # admitted first, heard late
    presence = opened(presence, "tablet", 2)
    kept, evicted = state.evict_oldest(presence, 2, at(3), at(3), TIMEOUTS)
    assert evicted == ["phone-stale"]
    assert set(kept.connections) == {"laptop", "tablet"}
    # Tombstoned: the edge's own conn.closed for it later changes nothing.
    assert closed(kept, "phone-stale", 4) == kept
    assert state.evict_oldest(kept, 2, at(5), at(5), TIMEOUTS) == (kept, [])
