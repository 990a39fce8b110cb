import hashlib
from datetime import UTC, datetime

import pytest

from chat_core.broker import user_key
from chat_core.clock import to_milliseconds
from chat_core.ids import MAX_USER_ID_BYTES, is_document_id
from chat_core.settings import AuthMode
from messaging.conversations import (
    InvalidParticipant,
    is_one_to_one,
    one_to_one_id,
    participants_of,
    user_id_check,
)
from messaging.sending import content_problem

ALICE, BOB, CAROL = "+84912345678", "+84987654321", "+84355555555"
DEV = user_id_check(AuthMode.DEV)


def test_creator_comes_first_and_duplicates_are_dropped() -> None:
    got = participants_of(ALICE, [BOB, ALICE, BOB, CAROL], is_valid=DEV, max_participants=10)
    assert got == (ALICE, BOB, CAROL)


def test_a_raw_plus_turned_into_a_space_is_accepted() -> None:
    got = participants_of(ALICE, [" 84987654321"], is_valid=DEV, max_participants=10)
    assert got == (ALICE, BOB)


@pytest.mark.parametrize("bad", ["", "84987654321", "+84187654321", "+8498765432", "bob", "+1555"])
def test_an_invalid_user_id_is_refused_with_its_position(bad: str) -> None:
    with pytest.raises(InvalidParticipant) as refused:
        participants_of(ALICE, [BOB, bad], is_valid=DEV, max_participants=10)
    assert refused.value.index == 1
    assert repr(bad) in refused.value.reason


def test_a_conversation_needs_someone_besides_the_creator() -> None:
    with pytest.raises(InvalidParticipant, match="at least one user besides you"):
        participants_of(ALICE, [ALICE], is_valid=DEV, max_participants=10)


def test_participants_are_bounded() -> None:
    with pytest.raises(InvalidParticipant, match="at most 2 participants"):
        participants_of(ALICE, [BOB, CAROL], is_valid=DEV, max_participants=2)


def test_firebase_mode_accepts_opaque_uids_but_not_blank_or_control_characters() -> None:
    check = user_id_check(AuthMode.FIREBASE)
    assert check("kX9aPq2LmN0uid")
    assert not check("")
    assert not check("a\nb")
    assert not check("x" * 129)
    assert check("x" * 128)


def test_firebase_uids_are_bounded_in_bytes_for_the_routing_key() -> None:
    # 43 three-byte characters: within firebase-admin's 128 characters, over 128 bytes.
    check = user_id_check(AuthMode.FIREBASE)
    assert check("€" * 42)
    assert not check("€" * 43)
    assert not check("\ud800")
    assert len(user_key("x" * MAX_USER_ID_BYTES).encode()) <= 255


def test_one_to_one_ids_of_pairs_joined_by_a_bar_do_not_collide() -> None:
    assert one_to_one_id("a|b", "c") != one_to_one_id("a", "b|c")
    assert one_to_one_id("a|b", "c") == one_to_one_id("c", "a|b")
    assert one_to_one_id("a", "b||c") != one_to_one_id("a|", "|b|c")


def test_one_to_one_ids_of_todays_pairs_are_unchanged() -> None:
    # What conversations created before the encoding changed are stored under.
    assert (
        one_to_one_id(ALICE, BOB)
        == hashlib.sha256(f"one-to-one|{min(ALICE, BOB)}|{max(ALICE, BOB)}".encode()).hexdigest()[
            :24
        ]
    )
    assert one_to_one_id("kX9aPq2LmN0uid", "zz") == "33cfec9c30731d7bdaa745a5"


def test_one_to_one_id_is_the_same_for_the_pair_in_either_order() -> None:
    assert one_to_one_id(ALICE, BOB) == one_to_one_id(BOB, ALICE)
    assert one_to_one_id(ALICE, BOB) != one_to_one_id(ALICE, CAROL)
    assert is_document_id(one_to_one_id(ALICE, BOB))


def test_only_an_unnamed_pair_is_a_one_to_one() -> None:
    assert is_one_to_one((ALICE, BOB), None)
    assert not is_one_to_one((ALICE, BOB), "project")
    assert not is_one_to_one((ALICE, BOB, CAROL), None)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ("x" * 11, "longer than 10"),
    ],
)
def test_content_problems(content: str, problem: str) -> None:
    found = content_problem(content, max_chars=10)
    assert found is not None
    assert problem in found


@pytest.mark.parametrize("content", ["hi", "x" * 10, " padded ", "xin chào 👋"])
def test_acceptable_content(content: str) -> None:
    assert content_problem(content, max_chars=10) is None


def test_timestamps_are_cut_to_what_bson_keeps() -> None:
    moment = datetime(2025, 1, 1, 12, 0, 0, 123_999, tzinfo=UTC)
    assert to_milliseconds(moment) == datetime(2025, 1, 1, 12, 0, 0, 123_000, tzinfo=UTC)
