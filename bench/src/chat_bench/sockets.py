"""One device: a real WebSocket client, exactly as an app connects, that timestamps each frame
on arrival (monotonic clock) and hands it to the scenario."""

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Frame = dict[str, Any]
FrameHandler = Callable[["BenchSocket", Frame, float], None]

HEARTBEAT = '{"event":"heartbeat"}'


def socket_url(edge_ws_url: str, user_id: str) -> str:
    # %2B rather than a raw `+`: the edge accepts both, and this one survives every parser.
    encoded = quote(user_id, safe="")
    return f"{edge_ws_url}/ws/{encoded}?token={encoded}"


class SocketClosed(Exception):
    pass


class BenchSocket:
    def __init__(self, edge_ws_url: str, user_id: str, on_frame: FrameHandler) -> None:
        self.user_id = user_id
        self._url = socket_url(edge_ws_url, user_id)
        self._on_frame = on_frame
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        # The edge answers heartbeats in order, so acks match sends first-in first-out.
        self._acks: collections.deque[asyncio.Future[float]] = collections.deque()
        self.close_code: int | None = None

    async def open(self, open_timeout: float) -> None:
        self._socket = await connect(
            self._url,
            compression=None,
            proxy=None,
            open_timeout=open_timeout,
            # The edge pings every 20 s and the client answers; a second ping stream would only
            # add load that real apps (browsers) do not produce.
            ping_interval=None,
            close_timeout=5,
            user_agent_header="chat-bench",
        )
        self._reader = asyncio.create_task(self._read(self._socket))

    @property
    def is_open(self) -> bool:
        return self._socket is not None and self.close_code is None and self._reader is not None

    async def send(self, text: str) -> None:
        if self._socket is None:
            raise SocketClosed(self.user_id)
        await self._socket.send(text)

    async def heartbeat(self) -> float:
        """Send one heartbeat; seconds until its heartbeat_ack arrived."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._acks.append(future)
        sent_at = time.monotonic()
        await self.send(HEARTBEAT)
        acked_at = await future
        return acked_at - sent_at

    async def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._socket.close()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=10)

    async def _read(self, socket: ClientConnection) -> None:
        try:
            async for raw in socket:
                at = time.monotonic()
                frame = orjson.loads(raw)
                if frame.get("event") == "heartbeat_ack" and self._acks:
                    future = self._acks.popleft()
                    if not future.done():
                        future.set_result(at)
                    continue
                self._on_frame(self, frame, at)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = socket.close_code if socket.close_code is not None else 1006
            while self._acks:
                future = self._acks.popleft()
                if not future.done():
                    future.set_exception(SocketClosed(f"{self.user_id}: {self.close_code}"))


def ignore_frames(_socket: BenchSocket, _frame: Frame, _at: float) -> None:
    pass
