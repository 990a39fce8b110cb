"""uvicorn's sans-I/O WebSocket protocol, holding less per idle connection.

Measured with tracemalloc (docs/edge.md, "Memory per socket"), an idle socket on uvicorn's
`websockets-sansio` protocol held about 7 KiB that a connection nobody writes to does not
need: an `asyncio.Queue` for inbound messages (three deques of 760 bytes and an Event with
a fourth), an `asyncio.Event` for write flow control (a fifth deque), and the parsed
handshake request and response with their headers, kept for the socket's whole life (the
request also by websockets' parser generator). This subclass replaces the queue and the
event with single-waiter equivalents that allocate only while something waits, and drops
the handshake (emptying the request's headers) once it is answered. Everything else
is uvicorn's (0.54; tests/unit/ws_edge/test_protocol.py fails if the parts replaced here
change shape).
"""

import asyncio
import logging
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

# uvicorn logs '"WebSocket /ws/..." [accepted]' and websockets "connection open" at info for
# every handshake (the first made into a record, then filtered out by chat_core.logs: a
# record per connect for nothing); the edge logs its own "connected" once a socket is
# admitted. Warnings and errors (an exception in the app) still come through.
_PROTOCOL_LOG = logging.getLogger("uvicorn.error.websocket")
_PROTOCOL_LOG.setLevel(logging.WARNING)


class _Inbox:
    """What `asyncio.Queue` does for one reader: uvicorn pauses reading after every message,
    so at most a message and a disconnect ever wait here."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        items = self._items
        item = items.pop(0)
        if not items:
            self._items = None
        return item


class _Gate:
    """What `asyncio.Event` does for the writers of one socket, without a deque of waiters."""

    __slots__ = ("_closed",)

    def __init__(self) -> None:
        # None: open. A future: closed (the transport's buffer is full) until it completes.
        self._closed: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._closed is None

    def set(self) -> None:
        closed = self._closed
        self._closed = None
        if closed is not None and not closed.done():
            closed.set_result(None)

    def clear(self) -> None:
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()

    async def wait(self) -> None:
        while self._closed is not None:
            await asyncio.shield(self._closed)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = _PROTOCOL_LOG
        self.conn.logger = _PROTOCOL_LOG
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable: _Gate = _Gate()  # type: ignore[assignment]

    def write_text_now(self, text: str) -> bool:
        """Write a text frame at once, as `send` would, without a coroutine: what a fan-out
        to thousands of sockets does per socket. False when it cannot go now (the transport
        is over its high-water mark, or the socket is not open): the caller queues it."""
        if (
            self.writable._closed is not None
            or self.disconnected
            or not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
        ):
            return False
        try:
            self.conn.send_text(text.encode())
        except InvalidState:
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake is answered: nothing reads the request or the response again.
            # websockets' parser generator keeps the request as a local for the connection's
            # life, so its headers are emptied in place rather than only dereferenced.
            request = self.__dict__.pop("request", None)
            if request is not None:
                request.headers.clear()
            self.__dict__.pop("response", None)
