"""Time as the store keeps it."""

from datetime import datetime


def to_milliseconds(moment: datetime) -> datetime:
    """BSON keeps milliseconds: truncate before writing so what a request answers, what the
    events carry and what is read back later are the same instant."""
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
