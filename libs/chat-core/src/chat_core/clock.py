"""Time as the system keeps it: aware UTC, at the millisecond precision BSON stores."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_milliseconds(moment: datetime) -> datetime:
    """BSON keeps milliseconds: truncate before writing or comparing, so what a request
    answers, what the events carry and what is read back later are the same instant.
    A naive value (as PyMongo returns without tz_aware) is taken as UTC."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def isoformat(moment: datetime) -> str:
    """ISO-8601 with an explicit offset, millisecond precision, always UTC."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
