"""Routine log lines carry masked phone numbers; warnings and errors keep the whole id."""

import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from chat_core.logs import configure_logging, mask_phone_numbers

NUMBER = "+84912345678"


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> Iterator[list[dict[str, object]]]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook)
    configure_logging("test", "DEBUG", "json")
    try:
        log = structlog.get_logger("test")
        log.info("admitted", user_id=NUMBER, participants=[NUMBER, "+84355555555"])
        log.debug(f"path /ws/{NUMBER}?token=[redacted]")
        logging.getLogger("uvicorn.error").info("library line about %s", NUMBER)
        log.warning("unbind failed", user_id=NUMBER)
        yield [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        # configure_logging sets process-wide state; the rest of the session must not see it.
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        logging.captureWarnings(False)
        root.handlers[:], level, sys.excepthook = saved
        root.setLevel(level)


def test_info_and_debug_lines_mask_phone_numbers(lines: list[dict[str, object]]) -> None:
    admitted, path, library, _warning = lines
    assert admitted["user_id"] == "+84******678"
    assert admitted["participants"] == ["+84******678", "+84******555"]
    assert path["event"] == "path /ws/+84******678?token=[redacted]"
    assert library["event"] == "library line about +84******678"
    assert all(NUMBER not in json.dumps(line) for line in lines[:3])


def test_a_warning_keeps_the_whole_id(lines: list[dict[str, object]]) -> None:
    assert lines[3]["user_id"] == NUMBER


def test_what_is_not_a_phone_number_is_untouched() -> None:
    for text in ("kX9aPq2LmN0uid", "+1234", "3 + 4", "conversation 65f0c0ffee0000000000cafe"):
        assert mask_phone_numbers(text) == text
