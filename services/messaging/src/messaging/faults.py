"""Fault injection for crash tests, switched on only by settings (FAULT_CRASH_AFTER_WRITE)."""

import os
from collections.abc import Callable

import structlog

from chat_core.testing import TestSettings

log = structlog.get_logger(__name__)

CRASH_EXIT_STATUS = 70


def _crash_after_write() -> None:
    log.error("fault injection: exiting between the message write and its publish")
    # os._exit, not sys.exit: no cleanup, no lifespan shutdown, like a killed process.
    os._exit(CRASH_EXIT_STATUS)


def _carry_on() -> None:
    return None


def after_write_hook(hooks: TestSettings) -> Callable[[], None]:
    if hooks.fault_crash_after_write:
        log.warning("FAULT_CRASH_AFTER_WRITE is on: the first message sent kills this process")
        return _crash_after_write
    return _carry_on
