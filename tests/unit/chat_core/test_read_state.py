from datetime import UTC, datetime

from chat_core.store.read_state import ReadPosition, read_by, unread

AT = datetime(2025, 1, 1, tzinfo=UTC)


def position(user_id: str, seq: int) -> ReadPosition:
    return ReadPosition(user_id, seq, f"m{seq}", AT)


def test_unread_is_last_seq_minus_read_seq() -> None:
    assert unread(10, position("bob", 7)) == 3
    assert unread(10, None) == 10
    assert unread(0, None) == 0


def test_unread_never_negative_when_the_last_seq_hint_lags() -> None:
    assert unread(5, position("bob", 6)) == 0


def test_read_by_lists_members_at_or_past_the_message_in_participant_order() -> None:
    positions = {
        "carol": position("carol", 9),
        "bob": position("bob", 5),
        "dave": position("dave", 4),
    }
    readers = read_by(5, "alice", ["alice", "bob", "carol", "dave"], positions)
    assert [r.user_id for r in readers] == ["bob", "carol"]


def test_read_by_leaves_out_the_sender_even_when_they_read_past_it() -> None:
    assert read_by(3, "alice", ["alice", "bob"], {"alice": position("alice", 8)}) == []


def test_read_by_ignores_positions_of_non_participants() -> None:
    assert read_by(3, "alice", ["alice", "bob"], {"mallory": position("mallory", 3)}) == []
