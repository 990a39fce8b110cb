"""The driver every scenario shares: users brought online (ramped), kept alive as apps do,
given conversations, and the stack left to absorb all that before anything is measured."""

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from chat_bench.pacing import PacedRun, paced
from chat_bench.rest import SETUP_ATTEMPTS, SETUP_TIMEOUT, Http
from chat_bench.results import Figure, ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.sockets import Device, FrameHandler, open_device
from chat_bench.stats import latency_figures

CONNECT_TIMEOUT = 10.0
CONNECT_CONCURRENCY = 100
CREATE_CONCURRENCY = 16
HEARTBEAT_TIMEOUT = 10.0
# Heartbeats go on at most this long; every scenario ends (and stops them) well before.
KEEPALIVE_HORIZON_SECONDS = 4 * 3600


@dataclass
class Online:
    devices: dict[str, Device] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # Seconds from the first connect attempt until the last socket was admitted.
    seconds: float = 0.0
    # Per socket: from the connect attempt until its first heartbeat_ack.
    connect_latencies: list[float] = field(default_factory=list)
    heartbeat_round_trips: list[float] = field(default_factory=list)
    heartbeat_failures: int = 0
    _keepalive: asyncio.Task[PacedRun] | None = None

    def __getitem__(self, user_id: str) -> Device:
        return self.devices[user_id]

    def keep_alive(self, interval: float) -> None:
        """Each socket heartbeats once per `interval`, spread evenly, as the spec's app does
        (every 30 s): without it presence would expire idle users mid-run."""
        if interval <= 0 or not self.devices:
            return
        rate = len(self.devices) / interval
        count = math.ceil(rate * KEEPALIVE_HORIZON_SECONDS)
        self._keepalive = asyncio.create_task(self.heartbeats(rate, count, failures=[]))

    async def heartbeats(self, rate: float, count: int, failures: list[str]) -> PacedRun:
        """`count` heartbeats at `rate`, round robin over the sockets; round trips go to
        `heartbeat_round_trips`, failures are counted and described in `failures`."""
        devices = list(self.devices.values())

        async def beat(index: int) -> None:
            device = devices[index % len(devices)]
            try:
                round_trip = await asyncio.wait_for(device.heartbeat(), HEARTBEAT_TIMEOUT)
            except Exception as error:
                self.heartbeat_failures += 1
                failures.append(f"{device.user_id}: {type(error).__name__}: {error}")
            else:
                self.heartbeat_round_trips.append(round_trip)

        return await paced(
            count, beat, rate=rate, max_in_flight=len(devices), settle_timeout=HEARTBEAT_TIMEOUT
        )

    async def close(self, concurrency: int = 500) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        limit = asyncio.Semaphore(concurrency)

        async def close_one(device: Device) -> None:
            async with limit:
                await device.close()

        await asyncio.gather(*(close_one(d) for d in self.devices.values()))


async def bring_online(
    ctx: Context,
    user_ids: Sequence[str],
    on_frame: FrameHandler,
    *,
    concurrency: int = CONNECT_CONCURRENCY,
    rate: float | None = None,
) -> Online:
    """Connect every user and wait for a heartbeat_ack on each: the edge answers frames only
    after admission and after binding the user's delivery key, so an ack means that events
    for this user can reach it."""
    online = Online()
    started = time.monotonic()

    async def connect_one(index: int) -> None:
        user_id = user_ids[index]
        attempt = time.monotonic()
        try:
            device = await open_device(
                ctx.endpoints.edge_ws, user_id, on_frame, within=CONNECT_TIMEOUT
            )
        except Exception as error:
            online.failures.append(f"{user_id}: {type(error).__name__}: {error}")
            return
        try:
            await asyncio.wait_for(device.heartbeat(), CONNECT_TIMEOUT)
        except Exception as error:
            online.failures.append(f"{user_id}: {type(error).__name__}: {error}")
            await device.close()
            return
        online.connect_latencies.append(time.monotonic() - attempt)
        online.devices[user_id] = device

    def status() -> str:
        return (
            f"connecting: {len(online.devices)}/{len(user_ids)} online, "
            f"{len(online.failures)} failed"
        )

    async with ctx.progress.ticking(status):
        await paced(
            len(user_ids),
            connect_one,
            rate=rate,
            max_in_flight=concurrency,
            settle_timeout=3 * CONNECT_TIMEOUT,
        )
    online.seconds = time.monotonic() - started
    ctx.progress.say(f"{len(online.devices)} online in {online.seconds:.1f}s")
    return online


@contextlib.asynccontextmanager
async def online_users(
    ctx: Context, user_ids: Sequence[str], on_frame: FrameHandler
) -> AsyncIterator[Online]:
    """Everyone online (or the scenario fails), heartbeating, for the length of the block."""
    online = await bring_online(ctx, user_ids, on_frame)
    try:
        if online.failures:
            raise RuntimeError(
                f"{len(online.failures)} of {len(user_ids)} users could not connect, "
                f"e.g. {online.failures[0]}"
            )
        # Apps heartbeat from the moment they connect; presence expires users who do not.
        online.keep_alive(ctx.heartbeat_interval)
        yield online
    finally:
        await online.close()


@dataclass(frozen=True)
class ConversationSpec:
    creator: str
    others: tuple[str, ...]
    name: str | None = None


async def create_conversations(
    ctx: Context, specs: Sequence[ConversationSpec], *, concurrency: int = CREATE_CONCURRENCY
) -> list[str]:
    """Conversation ids in the order of `specs`; the first refusal ends the scenario."""
    ids: dict[int, str] = {}
    errors: list[Exception] = []

    async def create(index: int) -> None:
        spec = specs[index]
        try:
            ids[index] = await ctx.messaging.create_conversation(
                spec.creator, list(spec.others), spec.name
            )
        except Exception as error:
            errors.append(error)

    started = time.monotonic()
    async with ctx.progress.ticking(lambda: f"creating conversations: {len(ids)}/{len(specs)}"):
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
    ctx.progress.say(f"{len(specs)} conversations in {time.monotonic() - started:.1f}s")
    return [ids[index] for index in range(len(specs))]


async def settle(ctx: Context, user_ids: Sequence[str]) -> float | None:
    """Seconds until presence shows the last users to connect (asking as each) with a
    device, or None at the deadline. Presence consumes connection events in order, so the
    last ones tell when it has worked off the connection storm; measuring before that would
    measure the backlog too."""
    started = time.monotonic()
    deadline = started + ctx.settle_timeout
    waiting = list(user_ids[-ctx.settle_sample :])
    while waiting and time.monotonic() < deadline:
        user_id = waiting[0]
        try:
            view = await ctx.presence.get_json(f"/presence/{quote(user_id, safe='')}", user_id)
            seen = view.get("devices", 0) > 0
        except Exception:
            seen = False
        if seen:
            waiting.pop(0)
        else:
            await asyncio.sleep(0.25)
    if waiting:
        ctx.progress.say(f"presence had not caught up after {ctx.settle_timeout:g}s")
        return None
    seconds = time.monotonic() - started
    ctx.progress.say(f"presence caught up in {seconds:.1f}s")
    return seconds


def crowd_figures(online: Online, settle_seconds: float | None) -> dict[str, Figure]:
    return {
        "connect_seconds": round(online.seconds, 2),
        "presence_settle_seconds": None if settle_seconds is None else round(settle_seconds, 2),
        **latency_figures("background_heartbeat_ack", online.heartbeat_round_trips),
        "background_heartbeat_failures": online.heartbeat_failures,
    }


def record_setup_retries(result: ScenarioResult, http: Http) -> None:
    """Setup calls the stack failed and a retry fixed: not measured, but not hidden either."""
    result.figures["setup_retries"] = len(http.setup_retries)
    if http.setup_retries:
        result.notes.append(
            f"{len(http.setup_retries)} setup requests were retried, e.g. {http.setup_retries[0]}"
        )
