"""Bringing users online (ramped), keeping them alive as apps do, giving them conversations,
and waiting until the stack has absorbed all that before anything is measured."""

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from chat_bench.pacing import PacedRun, paced
from chat_bench.progress import Progress
from chat_bench.rest import SETUP_ATTEMPTS, SETUP_TIMEOUT, RestClient
from chat_bench.sockets import BenchSocket, FrameHandler

CONNECT_TIMEOUT = 10.0
HEARTBEAT_TIMEOUT = 10.0
# Heartbeats go on at most this long; every scenario ends (and stops them) well before.
KEEPALIVE_HORIZON_SECONDS = 4 * 3600


@dataclass
class Online:
    sockets: dict[str, BenchSocket] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # Seconds from the first connect attempt until the last socket was admitted.
    seconds: float = 0.0
    # Per socket: from the connect attempt until its first heartbeat_ack.
    connect_latencies: list[float] = field(default_factory=list)
    heartbeat_round_trips: list[float] = field(default_factory=list)
    heartbeat_failures: int = 0
    _keepalive: asyncio.Task[PacedRun] | None = None

    def __getitem__(self, user_id: str) -> BenchSocket:
        return self.sockets[user_id]

    def keep_alive(self, interval: float) -> None:
        """Each socket heartbeats once per `interval`, spread evenly, as the spec's app does
        (every 30 s): without it presence would expire idle users mid-run."""
        if interval <= 0 or not self.sockets:
            return
        sockets = list(self.sockets.values())
        rate = len(sockets) / interval

        async def beat(index: int) -> None:
            try:
                round_trip = await asyncio.wait_for(
                    sockets[index % len(sockets)].heartbeat(), HEARTBEAT_TIMEOUT
                )
            except Exception:
                self.heartbeat_failures += 1
            else:
                self.heartbeat_round_trips.append(round_trip)

        count = math.ceil(rate * KEEPALIVE_HORIZON_SECONDS)
        self._keepalive = asyncio.create_task(
            paced(count, beat, rate=rate, max_in_flight=len(sockets), settle_timeout=1)
        )

    async def close(self, concurrency: int = 200) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        limit = asyncio.Semaphore(concurrency)

        async def close_one(socket: BenchSocket) -> None:
            async with limit:
                await socket.close()

        await asyncio.gather(*(close_one(s) for s in self.sockets.values()))


async def bring_online(
    edge_ws_url: str,
    user_ids: Sequence[str],
    on_frame: FrameHandler,
    progress: Progress,
    *,
    concurrency: int,
    rate: float | None = None,
) -> Online:
    """Connect every user and wait for a heartbeat_ack on each: the edge answers frames only
    after admission and after binding the user's delivery key, so an ack means that events
    for this user can reach it."""
    online = Online()
    started = time.monotonic()

    async def connect_one(index: int) -> None:
        user_id = user_ids[index]
        socket = BenchSocket(edge_ws_url, user_id, on_frame)
        attempt = time.monotonic()
        try:
            await socket.open(CONNECT_TIMEOUT)
            await asyncio.wait_for(socket.heartbeat(), CONNECT_TIMEOUT)
        except Exception as error:
            online.failures.append(f"{user_id}: {type(error).__name__}: {error}")
            await socket.close()
            return
        online.connect_latencies.append(time.monotonic() - attempt)
        online.sockets[user_id] = socket

    def status() -> str:
        return (
            f"connecting: {len(online.sockets)}/{len(user_ids)} online, "
            f"{len(online.failures)} failed"
        )

    async with progress.ticking(status):
        await paced(
            len(user_ids),
            connect_one,
            rate=rate,
            max_in_flight=concurrency,
            settle_timeout=3 * CONNECT_TIMEOUT,
        )
    online.seconds = time.monotonic() - started
    progress.say(f"{len(online.sockets)} online in {online.seconds:.1f}s")
    return online


def require_everyone(online: Online, wanted: int) -> None:
    if online.failures:
        raise RuntimeError(
            f"{len(online.failures)} of {wanted} users could not connect, e.g. {online.failures[0]}"
        )


@dataclass(frozen=True)
class ConversationSpec:
    creator: str
    others: tuple[str, ...]
    name: str | None = None


async def create_conversations(
    rest: RestClient, specs: Sequence[ConversationSpec], progress: Progress, *, concurrency: int
) -> list[str]:
    """Conversation ids in the order of `specs`; the first refusal ends the scenario."""
    ids: dict[int, str] = {}
    errors: list[Exception] = []

    async def create(index: int) -> None:
        spec = specs[index]
        try:
            ids[index] = await rest.create_conversation(spec.creator, list(spec.others), spec.name)
        except Exception as error:
            errors.append(error)

    def status() -> str:
        return f"creating conversations: {len(ids)}/{len(specs)}"

    started = time.monotonic()
    async with progress.ticking(status):
        await paced(
            len(specs),
            create,
            rate=None,
            max_in_flight=concurrency,
            # Every attempt of the last creations may take the whole request timeout.
            settle_timeout=SETUP_ATTEMPTS * (SETUP_TIMEOUT + 5),
        )
    if errors:
        raise errors[0]
    if len(ids) != len(specs):
        raise RuntimeError(f"only {len(ids)} of {len(specs)} conversations were created")
    progress.say(f"{len(specs)} conversations in {time.monotonic() - started:.1f}s")
    return [ids[index] for index in range(len(specs))]


async def presence_caught_up(
    presence_url: str, user_ids: Sequence[str], progress: Progress, *, within: float
) -> float | None:
    """Seconds until presence shows each of `user_ids` (asking as that user) with a device,
    or None at the deadline. Presence consumes connection events in order, so the last users
    to connect tell when it has worked off the connection storm; measuring before that would
    measure the backlog too."""
    started = time.monotonic()
    deadline = started + within
    waiting = list(user_ids)
    async with httpx.AsyncClient(base_url=presence_url, trust_env=False, timeout=10.0) as http:

        def status() -> str:
            return f"waiting for presence to catch up: {len(waiting)} of {len(user_ids)} to go"

        async with progress.ticking(status):
            while waiting and time.monotonic() < deadline:
                user_id = waiting[0]
                try:
                    response = await http.get(
                        f"/presence/{quote(user_id, safe='')}",
                        headers={"Authorization": f"Bearer {user_id}"},
                    )
                    seen = response.status_code == 200 and response.json().get("devices", 0) > 0
                except httpx.HTTPError:
                    seen = False
                if seen:
                    waiting.pop(0)
                else:
                    await asyncio.sleep(0.25)
    if waiting:
        progress.say(f"presence had not caught up after {within:g}s; measuring anyway")
        return None
    seconds = time.monotonic() - started
    progress.say(f"presence caught up in {seconds:.1f}s")
    return seconds
