"""One user's live connection: typed events, heartbeats, reconnect with backoff, resume.

The socket is reopened with `since=<cursor>` after any close that asks the client to come back
(see `chat_core.close_codes`). The server then replays what was missed and says
`replay_done`; a server that does not (an older one), or a replay cut short (`truncated`), is
caught up over REST `GET /sync`, and where that route is missing too, from each conversation's
newest history page. `new_message` is de-duplicated by `messageId`, so every path can overlap.
"""

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias
from urllib.parse import quote

import structlog
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from chat_client.backoff import Backoff
from chat_client.rest import ApiError, RestClient
from chat_core.close_codes import CLOSE_CODES, ClientAction, CloseCode
from chat_core.events import (
    ClientFrame,
    ClientHeartbeat,
    ClientMessageRead,
    ClientStatusChange,
    ClientTyping,
    ConversationAnnounced,
    HeartbeatAck,
    NewMessage,
    ReplayDone,
    ServerFrame,
    Status,
    server_frame_adapter,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Connected:
    """The socket is open; `resumed` when it was opened with a `since` cursor."""

    resumed: bool
    event: Literal["connected"] = "connected"


@dataclass(frozen=True)
class Disconnected:
    """The socket closed; `retry_in` is the backoff before the next try, None when stopping."""

    code: int | None
    reason: str
    retry_in: float | None
    event: Literal["disconnected"] = "disconnected"


@dataclass(frozen=True)
class CaughtUp:
    """Everything missed while disconnected has been delivered, and how it was fetched."""

    via: Literal["replay", "sync", "history"]
    event: Literal["caught_up"] = "caught_up"


@dataclass(frozen=True)
class UnknownEvent:
    """A frame this client version does not model: passed on, never an error."""

    payload: dict[str, Any]
    event: str = field(default="unknown")


Event: TypeAlias = ServerFrame | Connected | Disconnected | CaughtUp | UnknownEvent


class NotConnected(Exception):
    pass


def close_action(code: int | None) -> ClientAction:
    try:
        return CLOSE_CODES[CloseCode(code)][1] if code is not None else ClientAction.RECONNECT
    except ValueError:
        # Unknown 4xxx codes are application refusals; anything else is worth a retry.
        return ClientAction.STOP if code is not None and code >= 4000 else ClientAction.RECONNECT


def socket_url(edge_url: str, user_id: str, token: str, since: str | None = None) -> str:
    # %2B rather than a raw `+`: the edge accepts both, and this one survives every parser.
    url = f"{edge_url}/ws/{quote(user_id, safe='')}?token={quote(token, safe='')}"
    if since is not None:
        url += f"&since={quote(since, safe='')}"
    return url


class _Seen:
    """The last `size` message ids, for de-duplication in bounded memory."""

    def __init__(self, size: int) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._size = size

    def add(self, message_id: str) -> bool:
        """True the first time an id is seen."""
        if message_id in self._ids:
            return False
        self._ids.add(message_id)
        self._order.append(message_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._ids


class ChatClient:
    """A user's device. Use as `async with ChatClient(...) as client:` and read `events()`."""

    def __init__(
        self,
        edge_url: str,
        user_id: str,
        token: str | None = None,
        *,
        rest: RestClient | None = None,
        since: str | None = None,
        heartbeat_interval: float = 30.0,
        replay_timeout: float = 5.0,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
        dedup_window: int = 10_000,
    ) -> None:
        self.edge_url = edge_url.rstrip("/")
        self.user_id = user_id
        # Dev mode: the token is the phone number itself; firebase mode: an ID token.
        self.token = token if token is not None else user_id
        self.rest = rest
        self.cursor = since
        self.heartbeat_interval = heartbeat_interval
        self.replay_timeout = replay_timeout
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._seen = _Seen(dedup_window)
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._socket: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stopped = asyncio.Event()
        self._closing = asyncio.Event()
        self._replay: asyncio.Future[ReplayDone] | None = None
        # The edge answers heartbeats in order, so acks match sends first-in first-out.
        self._acks: deque[asyncio.Future[None]] = deque()

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the first socket; returns once it is open, or once the client has stopped."""
        self._runner = asyncio.create_task(self._run(), name=f"chat-client {self.user_id}")
        connected = asyncio.create_task(self._connected.wait())
        stopped = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait(
                [connected, stopped, self._runner], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            connected.cancel()
            stopped.cancel()
        if self._runner.done():
            self._runner.result()  # a crash in the run loop surfaces here

    async def close(self) -> None:
        self._closing.set()
        if self._socket is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._socket.close()
        if self._runner is not None:
            await asyncio.wait([self._runner], timeout=10)
            if not self._runner.done():
                self._runner.cancel()

    async def drop(self) -> None:
        """Cut the network under the socket (no close handshake), as a lost connection does."""
        if self._socket is not None:
            self._socket.transport.abort()

    async def wait_stopped(self, timeout: float) -> tuple[int | None, str | None]:
        """Until the client gives up (a refusal such as 4001, or `close()`)."""
        await asyncio.wait_for(self._stopped.wait(), timeout)
        return self.close_code, self.close_reason

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # --- sending -----------------------------------------------------------------------

    async def send(self, frame: ClientFrame) -> None:
        if self._socket is None or not self._connected.is_set():
            raise NotConnected(self.user_id)
        await self._socket.send(frame.to_json().decode())

    async def typing(self, conversation_id: str) -> None:
        await self.send(ClientTyping(event="typing", conversation_id=conversation_id))

    async def mark_read(self, conversation_id: str, message_id: str) -> None:
        await self.send(
            ClientMessageRead(
                event="message_read", conversation_id=conversation_id, message_id=message_id
            )
        )

    async def set_status(self, status: Status) -> None:
        await self.send(ClientStatusChange(event="status_change", status=status))

    async def heartbeat(self) -> None:
        await self.send(ClientHeartbeat(event="heartbeat"))

    async def round_trip(self, timeout: float) -> None:
        """A heartbeat and its ack: once it returns, the edge has admitted this socket and
        frames sent before it have been read. Other events stay queued."""
        ack = asyncio.get_running_loop().create_future()
        self._acks.append(ack)
        try:
            await self.heartbeat()
            await asyncio.wait_for(ack, timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._acks.remove(ack)

    # --- receiving ---------------------------------------------------------------------

    async def next_event(self, timeout: float) -> Event:
        return await asyncio.wait_for(self._events.get(), timeout)

    async def wait_for(self, match: Callable[[Event], bool], timeout: float) -> Event:
        """The first event that matches; events before it are consumed."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._events.get()
                if match(event):
                    return event

    async def events(self) -> AsyncIterator[Event]:
        """Every event until the client stops (then the iterator ends)."""
        while True:
            if self._stopped.is_set() and self._events.empty():
                return
            getter = asyncio.ensure_future(self._events.get())
            stopped = asyncio.ensure_future(self._stopped.wait())
            done, _ = await asyncio.wait([getter, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if getter in done:
                yield getter.result()
            else:
                getter.cancel()

    def drain(self) -> list[Event]:
        drained: list[Event] = []
        while not self._events.empty():
            drained.append(self._events.get_nowait())
        return drained

    # --- the run loop ------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        try:
            while not self._closing.is_set():
                since = self.cursor
                try:
                    socket = await connect(
                        socket_url(self.edge_url, self.user_id, self.token, since),
                        open_timeout=self.open_timeout,
                        compression=None,
                        proxy=None,
                        user_agent_header="chat-client",
                    )
                except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as error:
                    delay = self.backoff.delay(attempt)
                    attempt += 1
                    log.info("connect failed", error=str(error), retry_in=round(delay, 2))
                    self._emit(Disconnected(None, str(error), delay))
                    await self._pause(delay)
                    continue
                received = await self._session(socket, since)
                if received:
                    attempt = 0
                code, reason = socket.close_code, socket.close_reason or ""
                if self._closing.is_set():
                    self.close_code, self.close_reason = code, reason
                    break
                action = close_action(code)
                if action is ClientAction.STOP:
                    self.close_code, self.close_reason = code, reason
                    log.info("refused; not reconnecting", code=code, reason=reason)
                    self._emit(Disconnected(code, reason, None))
                    break
                delay = self.backoff.delay(attempt, slow=action is ClientAction.BACK_OFF)
                attempt += 1
                log.info("disconnected", code=code, reason=reason, retry_in=round(delay, 2))
                self._emit(Disconnected(code, reason, delay))
                await self._pause(delay)
        finally:
            self._stopped.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _session(self, socket: ClientConnection, since: str | None) -> bool:
        """Read one socket until it closes; True when any frame arrived."""
        self._socket = socket
        self._replay = asyncio.get_running_loop().create_future()
        self._connected.set()
        self._emit(Connected(resumed=since is not None))
        helpers = [asyncio.create_task(self._heartbeats(socket))]
        if since is not None:
            helpers.append(asyncio.create_task(self._catch_up(since, self._replay)))
        received = False
        try:
            async for raw in socket:
                received = True
                self._receive(raw)
        except ConnectionClosed:
            pass
        finally:
            self._connected.clear()
            self._socket = None
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        return received

    async def _heartbeats(self, socket: ClientConnection) -> None:
        # Keeps the user's "last active" fresh; dead sockets are found by websockets' pings.
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.heartbeat_interval)
                await socket.send('{"event":"heartbeat"}')

    def _receive(self, raw: str | bytes) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            log.warning("undecodable frame", size=len(raw))
            return
        if not isinstance(data, dict):
            return
        try:
            frame = server_frame_adapter.validate_python(data)
        except ValidationError:
            self._emit(UnknownEvent(payload=data, event=str(data.get("event", "unknown"))))
            return
        if isinstance(frame, ReplayDone):
            # The precise cursor: store it rather than the last message id.
            self.cursor = frame.next_since
            if self._replay is not None and not self._replay.done():
                self._replay.set_result(frame)
        elif isinstance(frame, NewMessage):
            self._deliver_message(frame)
        else:
            if isinstance(frame, HeartbeatAck):
                while self._acks:
                    ack = self._acks.popleft()
                    if not ack.done():
                        ack.set_result(None)
                        break
            self._emit(frame)

    def _deliver_item(self, item: dict[str, Any]) -> None:
        """A message from REST (sync or history); tombstones (`seq` holes) carry nothing."""
        if item.get("tombstone") or "messageId" not in item:
            return
        self._deliver_message(NewMessage.model_validate({**item, "event": "new_message"}))

    def _deliver_message(self, message: NewMessage) -> None:
        if not self._seen.add(message.message_id):
            return
        self.cursor = message.message_id
        self._emit(message)

    def _emit(self, event: Event) -> None:
        self._events.put_nowait(event)

    # --- catching up after a reconnect -------------------------------------------------

    async def _catch_up(self, since: str, replay: asyncio.Future[ReplayDone]) -> None:
        try:
            done: ReplayDone | None = await asyncio.wait_for(
                asyncio.shield(replay), self.replay_timeout
            )
        except TimeoutError:
            done = None
        if done is not None and not done.truncated:
            self._emit(CaughtUp(via="replay"))
            return
        if self.rest is None:
            log.warning("missed messages may not be delivered: no REST client to catch up")
            return
        start = done.next_since if done is not None else since
        try:
            await self._sync_from(start)
            self._emit(CaughtUp(via="sync"))
        except ApiError as error:
            if error.status not in (404, 405):
                raise
            # A server without /sync: each conversation's newest page is the best we can do.
            await self._catch_up_from_history()
            self._emit(CaughtUp(via="history"))

    async def _sync_from(self, since: str) -> None:
        assert self.rest is not None
        while True:
            page = await self.rest.sync(since, limit=200)
            for conversation in page.get("conversations", []):
                # Created while this client was away: announced like the live event.
                self._emit(
                    ConversationAnnounced.model_validate(
                        {**conversation, "event": "conversation_created"}
                    )
                )
            for item in page.get("items", []):
                self._deliver_item(item)
            if page.get("nextSince"):
                since = str(page["nextSince"])
                self.cursor = since
            if not page.get("hasMore"):
                return

    async def _catch_up_from_history(self, page_size: int = 50) -> None:
        assert self.rest is not None
        listing = await self.rest.conversations()
        for summary in listing.get("items", []):
            last = summary.get("lastMessage")
            if not last or last.get("messageId") in self._seen:
                continue
            page = await self.rest.history(summary["id"], limit=page_size)
            for item in reversed(page.get("items", [])):
                self._deliver_item(item)
