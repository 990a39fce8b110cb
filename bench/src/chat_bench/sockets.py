"""The load client's WebSocket side: one device per user, on picows.

picows is callback-driven (no reader task per socket): about 0.8-0.9 ms of this process's CPU
per connect + first heartbeat, against 1.1-1.5 ms for aiohttp's client and 1.0 for websockets,
measured side by side on one stack (docs/performance.md, "The load generator"). Frames are
decoded once with orjson and handed to the scenario with their arrival time
(`time.monotonic()`, the clock every latency here is taken on).
"""

import asyncio
import collections
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

Frame = dict[str, Any]
FrameHandler = Callable[["Device", Frame, float], None]

HEARTBEAT = b'{"event":"heartbeat"}'


def socket_url(edge_ws_url: str, user_id: str) -> str:
    # %2B rather than a raw `+`: the edge accepts both, and this one survives every parser.
    encoded = quote(user_id, safe="")
    return f"{edge_ws_url}/ws/{encoded}?token={encoded}"


class SocketClosed(Exception):
    pass


def ignore_frames(_device: "Device", _frame: Frame, _at: float) -> None:
    pass


class Device(WSListener):
    """One user's socket. The edge answers heartbeats in order, so acks match sends first-in
    first-out; every other frame goes to `on_frame`."""

    def __init__(self, user_id: str, on_frame: FrameHandler) -> None:
        self.user_id = user_id
        self.on_frame = on_frame
        self.transport: WSTransport | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._acks: collections.deque[asyncio.Future[float]] = collections.deque()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT:
            at = time.monotonic()
            decoded = orjson.loads(frame.get_payload_as_bytes())
            if decoded.get("event") == "heartbeat_ack" and self._acks:
                future = self._acks.popleft()
                if not future.done():
                    future.set_result(at)
                return
            self.on_frame(self, decoded, at)
        elif kind == WSMsgType.CLOSE:
            self.close_code = frame.get_close_code().value
            self.close_reason = (frame.get_close_message() or b"").decode(errors="replace")
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.close_code is None:
            self.close_code = 1006
        while self._acks:
            future = self._acks.popleft()
            if not future.done():
                future.set_exception(SocketClosed(f"{self.user_id}: {self.close_code}"))

    @property
    def is_open(self) -> bool:
        return self.transport is not None and self.close_code is None

    def send(self, frame: bytes) -> None:
        if self.transport is None or self.close_code is not None:
            raise SocketClosed(f"{self.user_id}: {self.close_code}")
        self.transport.send(WSMsgType.TEXT, frame)

    async def heartbeat(self) -> float:
        """One heartbeat; seconds until its heartbeat_ack arrived."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._acks.append(future)
        sent_at = time.monotonic()
        self.send(HEARTBEAT)
        return await future - sent_at

    async def close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        with contextlib.suppress(Exception):
            transport.send_close(WSCloseCode.OK)
        try:
            await asyncio.wait_for(transport.wait_disconnected(), 5)
        except TimeoutError:
            transport.disconnect(graceful=False)


async def open_device(
    edge_ws_url: str, user_id: str, on_frame: FrameHandler, *, within: float = 10.0
) -> Device:
    """Upgraded (not yet admitted: the first heartbeat_ack says that)."""
    url = socket_url(edge_ws_url, user_id)
    async with asyncio.timeout(within):
        _transport, device = await ws_connect(
            lambda: Device(user_id, on_frame), url, websocket_handshake_timeout=within
        )
    assert isinstance(device, Device)
    return device


class StuckSocket:
    """A device that stops reading its socket after the handshake: a tiny receive buffer and
    the transport paused, so the edge's writes back up as they would behind a stalled phone."""

    RECEIVE_BUFFER = 4096

    def __init__(self, edge_ws_url: str, user_id: str) -> None:
        self._url = socket_url(edge_ws_url, user_id)
        self._device = Device(user_id, self._count)
        self.frames = 0
        self._closed = asyncio.Event()

    def _count(self, _device: Device, _frame: Frame, _at: float) -> None:
        self.frames += 1

    @staticmethod
    def _small_socket(_url: object) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, StuckSocket.RECEIVE_BUFFER)
        sock.setblocking(False)
        return sock

    async def __aenter__(self) -> Self:
        transport, _ = await ws_connect(
            lambda: self._device, self._url, socket_factory=self._small_socket
        )
        transport.underlying_transport.pause_reading()
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._device.transport is not None:
            self._device.transport.disconnect(graceful=False)

    async def read_until_closed(self, within: float = 30.0) -> "ReadBack":
        """Read again, as a live client would (answering pings), until the edge closes the
        socket or `within` seconds pass."""
        transport = self._device.transport
        assert transport is not None
        transport.underlying_transport.resume_reading()
        try:
            await asyncio.wait_for(transport.wait_disconnected(), within)
        except TimeoutError:
            return ReadBack(self.frames, closed=False, code=None)
        code = self._device.close_code
        return ReadBack(self.frames, closed=True, code=None if code == 1006 else code)


@dataclass(frozen=True)
class ReadBack:
    """What a stuck socket found once it read again."""

    frames: int
    # Whether the edge ended the connection; `code` is None when it dropped it without a
    # close frame (a peer that would not even take that).
    closed: bool
    code: int | None
