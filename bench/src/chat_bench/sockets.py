"""One device: a real WebSocket client, exactly as an app connects, that timestamps each frame
on arrival (monotonic clock) and hands it to the scenario."""

import asyncio
import collections
import contextlib
import dataclasses
import socket
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

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


class StuckSocket:
    """A device that stops reading its socket: a tiny receive buffer and no reads after the
    handshake, so the edge's writes back up as they would behind a stalled phone.

    Built on websockets' sans-I/O protocol over a raw socket, because a normal client keeps
    reading into its own buffers.
    """

    RECEIVE_BUFFER = 4096

    def __init__(self, edge_ws_url: str, user_id: str) -> None:
        self.uri = parse_uri(socket_url(edge_ws_url, user_id))
        self.protocol = ClientProtocol(self.uri)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RECEIVE_BUFFER)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (self.uri.host, self.uri.port))
        # A small stream limit: asyncio stops reading from the socket once this is buffered.
        self._reader, self._writer = await asyncio.open_connection(sock=sock, limit=1024)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        async with asyncio.timeout(10):
            while self.protocol.state is not State.OPEN:
                data = await self._reader.read(1024)
                if not data:
                    raise ConnectionError("edge closed the socket during the handshake")
                self.protocol.receive_data(data)
        self.protocol.events_received()
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._writer is not None:
            self._writer.close()

    def _flush(self) -> None:
        assert self._writer is not None
        for chunk in self.protocol.data_to_send():
            if chunk:
                self._writer.write(chunk)

    async def read_until_closed(self, within: float = 30.0) -> "ReadBack":
        """Start reading again, as a live client would (answering pings), until the edge
        closes the socket or `within` seconds pass."""
        assert self._reader is not None
        frames = 0
        try:
            async with asyncio.timeout(within):
                while True:
                    try:
                        data = await self._reader.read(65536)
                    except ConnectionError:
                        data = b""
                    if data:
                        self.protocol.receive_data(data)
                    else:
                        self.protocol.receive_eof()
                    # Pongs and the closing handshake.
                    with contextlib.suppress(ConnectionError):
                        self._flush()
                    frames += sum(
                        isinstance(e, WsFrame) and e.opcode is Opcode.TEXT
                        for e in self.protocol.events_received()
                    )
                    if self.protocol.close_rcvd is not None:
                        return ReadBack(frames, closed=True, code=self.protocol.close_rcvd.code)
                    if not data:
                        return ReadBack(frames, closed=True, code=None)
        except TimeoutError:
            return ReadBack(frames, closed=False, code=None)


@dataclasses.dataclass(frozen=True)
class ReadBack:
    """What a stuck socket found once it read again."""

    frames: int
    # Whether the edge ended the connection; `code` is None when it dropped it without a
    # close frame (a peer that would not even take that).
    closed: bool
    code: int | None
