"""Time at the precision BSON stores, always UTC."""

from datetime import UTC, datetime, timedelta, timezone

from chat_core.clock import isoformat, to_milliseconds


def test_to_milliseconds_truncates_to_what_bson_stores() -> None:
    precise = datetime(2026, 1, 1, 12, 0, 0, 123_456, tzinfo=UTC)

    assert to_milliseconds(precise) == datetime(2026, 1, 1, 12, 0, 0, 123_000, tzinfo=UTC)


def test_a_naive_time_is_taken_as_utc() -> None:
    naive = datetime(2026, 1, 1, 12, 0, 0, 123_456)

    assert to_milliseconds(naive) == datetime(2026, 1, 1, 12, 0, 0, 123_000, tzinfo=UTC)


def test_isoformat_is_utc_with_milliseconds() -> None:
    moment = datetime(2026, 1, 1, 14, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))

    assert isoformat(moment) == "2026-01-01T12:00:00.123+00:00"
