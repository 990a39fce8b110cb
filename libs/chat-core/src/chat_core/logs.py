"""structlog setup: one JSON object per line off a terminal, coloured console on one.

Our lines are rendered by structlog; library lines (uvicorn, aio-pika, pymongo, asyncio,
warnings, an uncaught exception) go through the standard library's logging into structlog's
ProcessorFormatter and come out in the same shape: with JSON logs on, nothing a service
prints is anything else.
"""

import logging
import re
import sys
from types import TracebackType
from typing import Literal

import structlog

_REDACTED_KEYS = frozenset({"token", "authorization", "id_token", "password"})
# A token inside free text: a URL's query string (uvicorn logs paths with it) or a header.
_TOKEN_IN_TEXT = re.compile(r"(?i)((?:id_)?token=)[^&\s\"']+|(bearer\s+)[^\s\"']+")
# A phone number (dev mode's user ids, and what a Firebase phone sign-in may carry): E.164.
_PHONE_NUMBER = re.compile(r"\+(\d{2})\d{4,10}(\d{3})\b")
# Lines below this level are the routine ones (every connect, send and close): they carry
# a masked number. A warning or error is about one user an operator may have to act on, and
# is rare, so it keeps the whole id.
_MASK_BELOW = logging.WARNING
_LEVELS = {**logging.getLevelNamesMapping(), "EXCEPTION": logging.ERROR}
# Libraries that talk too much at INFO; their warnings and errors still come through.
_QUIET_LIBRARIES = ("aio_pika", "aiormq", "pamqp", "pymongo", "uvicorn.access", "httpx")


def _redact_secrets(
    _logger: object, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    # Belt and braces: callers never bind tokens, but a stray `token=` must not reach a log.
    for key in _REDACTED_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    event = event_dict.get("event")
    if isinstance(event, str) and _TOKEN_IN_TEXT.search(event):
        event_dict["event"] = _TOKEN_IN_TEXT.sub(lambda m: (m[1] or m[2]) + "[redacted]", event)
    return event_dict


def mask_phone_numbers(text: str) -> str:
    """+84912345678 -> +84******678: enough to tell lines apart, not enough to call anyone."""
    return _PHONE_NUMBER.sub(lambda m: f"+{m[1]}{'*' * (len(m[0]) - 6)}{m[2]}", text)


def _mask(value: object) -> object:
    if isinstance(value, str):
        return mask_phone_numbers(value) if "+" in value else value
    if isinstance(value, list | tuple):
        return [_mask(item) for item in value]
    return value


def _mask_phone_numbers(
    _logger: object, method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    if _LEVELS.get(method.upper(), logging.INFO) < _MASK_BELOW:
        for key, value in event_dict.items():
            event_dict[key] = _mask(value)
    return event_dict


class _NoPerSocketLines(logging.Filter):
    """uvicorn logs every WebSocket handshake; the edge logs its own admissions, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and '"WebSocket %s"' in record.msg)


def configure_logging(
    service: str, level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
        _mask_phone_numbers,
    ]
    tracebacks: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info] if as_json else []
    )
    numeric_level = logging.getLevelName(level.upper())
    # Our own lines skip the stdlib's machinery: structlog renders and writes them (a third of
    # the cost per line, which matters on the edge's per-connection lines).
    structlog.configure(
        processors=[*shared, *tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Library lines (uvicorn, aio-pika, pymongo, asyncio, warnings) are rendered the same way.
    # Both paths write whole lines to the same stream from the event loop's thread.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *tracebacks,
                renderer,
            ],
        )
    )
    handler.addFilter(_NoPerSocketLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    # uvicorn's own logger is configured by uvicorn.run only with a log_config; ours has none.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    structlog.contextvars.bind_contextvars(service=service)


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    structlog.get_logger("chat_core.logs").critical(
        "uncaught exception", exc_info=(kind, error, traceback)
    )
