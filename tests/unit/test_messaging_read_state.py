from datetime import UTC, datetime

import pytest

from chat_core.ids import new_id
from messaging.read_state import ReadPosition, has_read, moves_forward, read_by

AT = datetime(2025, 1, 1, tzinfo=UTC)


def ids(count: int) -> list[str]:
    """Ascending message ids, as the database orders them."""
    return sorted(new_id() for _ in range(count))


def test_the_first_read_moves_the_position() -> None:
    assert moves_forward(None, new_id())


def test_position_only_moves_forward() -> None:
    older, newer = ids(2)
    assert moves_forward(older, newer)
    assert not moves_forward(newer, older)
    assert not moves_forward(newer, newer)


def test_reading_a_message_reads_everything_before_it() -> None:
    first, second, third = ids(3)
    position = ReadPosition("bob", second, AT)
    assert has_read(position, first)
    assert has_read(position, second)
    assert not has_read(position, third)
    assert not has_read(None, first)


def test_read_by_lists_members_at_or_past_the_message_in_participant_order() -> None:
    before, message, after = ids(3)
    positions = {
        "carol": ReadPosition("carol", after, AT),
        "bob": ReadPosition("bob", message, AT),
        "dave": ReadPosition("dave", before, AT),
    }
    readers = read_by(message, "alice", ["alice", "bob", "carol", "dave"], positions)
    assert [r.user_id for r in readers] == ["bob", "carol"]


def test_read_by_leaves_out_the_sender_even_when_they_read_past_it() -> None:
    message, later = ids(2)
    positions = {"alice": ReadPosition("alice", later, AT)}
    assert read_by(message, "alice", ["alice", "bob"], positions) == []


def test_read_by_ignores_positions_of_non_participants() -> None:
    (message,) = ids(1)
    positions = {"mallory": ReadPosition("mallory", message, AT)}
    assert read_by(message, "alice", ["alice", "bob"], positions) == []


@pytest.mark.parametrize("count", [1, 5, 50])
def test_generated_ids_sort_in_creation_order(count: int) -> None:
    created = [new_id() for _ in range(count)]
    assert sorted(created) == created
