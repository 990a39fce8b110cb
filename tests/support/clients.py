"""Real clients: a WebSocket client that waits for events with deadlines, and a REST client."""

import asyncio
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# A device that stops reading its socket; the benchmark uses the same one.

Event = dict[str, Any]


class WsClient:
    """One device. Frames it receives are queued so a test can wait for a particular one."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self._socket: ClientConnection | None = None
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._closed = asyncio.Event()

    @classmethod
    def for_user(
        cls,
        edge_ws_url: str,
        user_id: str,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Self:
        token = user_id if token is None else token
        return cls(f"{edge_ws_url}/ws/{user_id}?token={token}", headers)

    async def __aenter__(self) -> Self:
        self._socket = await connect(
            self.url, compression=None, open_timeout=10, additional_headers=self.headers
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=5)

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            async for raw in self._socket:
                self._events.put_nowait(json.loads(raw))
        except ConnectionClosed:
            pass
        finally:
            if self._socket.close_code is not None:
                self.close_code = self._socket.close_code
                self.close_reason = self._socket.close_reason
            self._closed.set()

    async def send(self, payload: Event | str | bytes) -> None:
        assert self._socket is not None
        await self._socket.send(
            payload if isinstance(payload, str | bytes) else json.dumps(payload)
        )

    async def next_event(self, timeout: float = 5.0) -> Event:
        return await asyncio.wait_for(self._events.get(), timeout)

    async def wait_for(self, match: Callable[[Event], bool], timeout: float = 5.0) -> Event:
        """The first event that matches; events before it are dropped."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._events.get()
                if match(event):
                    return event

    async def wait_event(self, name: str, timeout: float = 5.0, **fields: Any) -> Event:
        return await self.wait_for(
            lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items()),
            timeout,
        )

    async def assert_nothing(self, match: Callable[[Event], bool], within: float = 1.0) -> None:
        """Fail if a matching event arrives within `within` seconds."""
        try:
            event = await self.wait_for(match, within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event: {event}")

    async def heartbeat(self, timeout: float = 5.0) -> None:
        await self.send({"event": "heartbeat"})
        await self.wait_event("heartbeat_ack", timeout)

    async def wait_closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        await asyncio.wait_for(self._closed.wait(), timeout)
        return self.close_code, self.close_reason

    def drain(self) -> list[Event]:
        events = []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        return events


def rest_client(base_url: str, user_id: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {user_id}"} if user_id else {}
    return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10.0)
