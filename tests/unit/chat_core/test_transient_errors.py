import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure

from chat_core.broker import is_transient


@pytest.mark.parametrize(
    "error",
    [
        AutoReconnect("primary gone"),
        OperationFailure(
            "[db.go:134 fsql.(*DB).InTransaction] database is locked (5) (SQLITE_BUSY)"
        ),
        TimeoutError(),
        ConnectionResetError(),
    ],
)
def test_blips_are_retried(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        OperationFailure("unknown operator: $foo"),
        DuplicateKeyError("E11000 duplicate key"),
        ValueError("a bug"),
        KeyError("x"),
    ],
)
def test_bugs_and_refusals_are_not(error: BaseException) -> None:
    assert not is_transient(error)
