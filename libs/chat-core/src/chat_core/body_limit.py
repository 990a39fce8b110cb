"""Request bodies over MAX_BODY_BYTES are refused with 413 before the app reads them."""

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A refused chunked body is read on and dropped up to this many times the limit.
DISCARD_FACTOR = 16


class BodyLimit:
    """Pure ASGI middleware. A declared Content-Length over the limit is refused unread; a
    body without one (chunked) is read up to the limit and handed on, or refused."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            # The server never hands on more than the declared length.
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._discard_rest(receive, message)
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _discard_rest(self, receive: Receive, message: Message) -> None:
        """Read (and drop) what the client is still sending, up to a bound: closing on
        unread data resets the connection, and the client would never see the 413."""
        budget = DISCARD_FACTOR * self.max_bytes
        while message.get("more_body", False) and budget > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            budget -= len(message.get("body", b""))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body too large: at most {self.max_bytes} bytes"},
            status_code=413,
        )
        await response(scope, receive, send)
