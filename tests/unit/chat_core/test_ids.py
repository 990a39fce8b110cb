import pytest

from chat_core.ids import is_document_id, is_vn_mobile, new_id, normalize_user_id


@pytest.mark.parametrize(
    "number",
    ["+84912345678", "+84312345678", "+84512345678", "+84712345678", "+84812345678"],
)
def test_vietnamese_mobile_numbers_are_valid(number: str) -> None:
    assert is_vn_mobile(number)


@pytest.mark.parametrize(
    "number",
    [
        "",
        "84912345678",
        "+8491234567",
        "+849123456789",
        "+84212345678",  # landline prefix
        "+84012345678",
        "+84612345678",
        "+15551234567",
        " 84912345678",
        "+84 912345678",
        "+8491234567a",
        "+\uff184912345678",  # a full-width digit is not a digit here
    ],
)
def test_anything_else_is_not(number: str) -> None:
    assert not is_vn_mobile(number)


def test_a_space_from_a_decoded_plus_becomes_a_plus_again() -> None:
    assert normalize_user_id(" 84912345678") == "+84912345678"


@pytest.mark.parametrize("raw", ["+84912345678", "hello", " hello", "  84912345678", ""])
def test_other_forms_are_left_alone(raw: str) -> None:
    assert normalize_user_id(raw) == raw


def test_new_ids_are_document_ids_and_sort_by_creation() -> None:
    ids = [new_id() for _ in range(200)]
    assert all(is_document_id(i) for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
