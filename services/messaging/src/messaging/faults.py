"""Fault injection for crash tests, switched on only by settings (FAULT_CRASH_AFTER_*)."""

import os
from dataclasses import dataclass

import structlog

from chat_core.testing import TestSettings

log = structlog.get_logger(__name__)

CRASH_EXIT_STATUS = 70


def _crash(where: str) -> None:
    log.error("fault injection: exiting", where=where)
    # os._exit, not sys.exit: no cleanup, no lifespan shutdown, like a killed process.
    os._exit(CRASH_EXIT_STATUS)


@dataclass(frozen=True)
class Faults:
    crash_after_claim: bool = False
    crash_after_write: bool = False

    def after_claim(self) -> None:
        """Between taking a seq and every other write of the send."""
        if self.crash_after_claim:
            _crash("after the seq was taken, before the rest of the send")

    def after_write(self) -> None:
        """Between the last write of the send and its publish."""
        if self.crash_after_write:
            _crash("between the message write and its publish")

    @classmethod
    def of(cls, hooks: TestSettings) -> "Faults":
        faults = cls(hooks.fault_crash_after_claim, hooks.fault_crash_after_write)
        if faults != cls():
            log.warning("fault injection is on: the first message sent kills this process")
        return faults
