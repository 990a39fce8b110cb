"""Per HTTP request: its id (bound in every log line it causes, and carried in the delivery
envelopes it publishes) and its metrics. One pure ASGI middleware for every service."""

import re
from contextvars import ContextVar
from time import perf_counter

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat_core.ids import new_id
from chat_core.metrics import observe_request

REQUEST_ID_HEADER = "x-request-id"
_HEADER_NAME = REQUEST_ID_HEADER.encode()
# A caller's id is kept when it looks like an id; anything else (too long, odd characters,
# a would-be log injection) is replaced by a generated one.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the HTTP request being served, None outside one (consumers, timers)."""
    return _request_id.get()


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == _HEADER_NAME:
            candidate = value.decode("latin-1")
            if _ACCEPTABLE_ID.fullmatch(candidate):
                return candidate
    return new_id()


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope.get("headers", []))
        token = _request_id.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((_HEADER_NAME, request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            observe_request(scope, status, started)
            structlog.contextvars.unbind_contextvars("request_id")
            _request_id.reset(token)
