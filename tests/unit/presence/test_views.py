"""What viewers see of a presence."""

from datetime import UTC, datetime, timedelta

from presence import state
from presence.state import Presence, Timeouts
from presence.views import view_of

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TIMEOUTS = Timeouts(edge=timedelta(seconds=30), idle=timedelta(seconds=120))
USER = "+84900000001"
CONTACT = "+84900000002"


def online_then_hidden() -> tuple[Presence, Presence]:
    online = state.open_connection(Presence(USER), "c1", "e1", T0, T0, TIMEOUTS)
    online = state.open_connection(online, "c2", "e2", T0, T0, TIMEOUTS)
    later = T0 + timedelta(seconds=60)
    hidden = state.choose_status(online, "offline", "c1", "e1", later, later, TIMEOUTS)
    latest = T0 + timedelta(seconds=90)
    return online, state.record_activity(hidden, "c2", "e2", latest, latest, TIMEOUTS)


def test_view_of_an_online_user() -> None:
    online, _ = online_then_hidden()

    view = view_of(online, CONTACT).model_dump(by_alias=True)

    assert view == {
        "userId": USER,
        "status": "available",
        "lastActiveAt": "2026-01-01T12:00:00.000+00:00",
        "devices": 2,
    }


def test_appearing_offline_hides_devices_and_activity_from_others_only() -> None:
    _, hidden = online_then_hidden()

    to_contact = view_of(hidden, CONTACT)
    to_self = view_of(hidden, USER)

    assert (to_contact.status, to_contact.devices) == ("offline", 0)
    assert to_contact.last_active_at == "2026-01-01T12:01:00.000+00:00"
    assert (to_self.status, to_self.devices) == ("offline", 2)
    assert to_self.last_active_at == "2026-01-01T12:01:30.000+00:00"


def test_never_seen_user_is_offline_with_no_activity() -> None:
    view = view_of(Presence(USER), CONTACT)

    assert (view.status, view.last_active_at, view.devices) == ("offline", None, 0)
