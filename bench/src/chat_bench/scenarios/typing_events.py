"""typing: WebSocket clients send typing events at a steady total rate; each must reach the
other member of its conversation. Latency is WebSocket to WebSocket.

The messaging worker lets one typing event per (user, conversation) through per
TYPING_THROTTLE_SECONDS, so the rate is spread over enough (user, conversation) pairs that
each pair sends only every two throttle intervals: users sit in a ring, user k in a
conversation with k-1 and one with k+1, which gives two pairs per user.
"""

import asyncio
import collections
import math
import time
from dataclasses import asdict, dataclass, field

import orjson

from chat_bench.pacing import PacedRun, paced
from chat_bench.population import (
    ConversationSpec,
    Online,
    create_conversations,
    crowd_figures,
    online_users,
    record_setup_retries,
    settle,
)
from chat_bench.results import ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.sockets import Device, Frame
from chat_bench.stats import latency_figures, summarize, to_ms
from chat_bench.users import fresh_user_ids

# Each pair sends at most once per this many throttle intervals.
THROTTLE_MARGIN = 2.0


@dataclass(frozen=True)
class TypingOptions:
    users: int = 1000
    rate: float = 1000.0
    duration: float = 30.0
    warmup: float = 5.0
    # The messaging worker's TYPING_THROTTLE_SECONDS.
    throttle: float = 1.0
    drain_timeout: float = 5.0
    duplicate_window: float = 1.0


SMOKE = TypingOptions(
    users=10, rate=10, duration=2, warmup=0.5, drain_timeout=5, duplicate_window=0.5
)


def ring_size(options: TypingOptions) -> int:
    """Users needed so that each of the 2 * users pairs sends only every THROTTLE_MARGIN
    throttle intervals at the offered rate (and at least 3, for a ring of distinct pairs)."""
    return max(options.users, math.ceil(options.rate * options.throttle * THROTTLE_MARGIN / 2), 3)


@dataclass(frozen=True)
class TypingPair:
    sender: str
    receiver: str
    conversation_id: str


@dataclass
class TypingLoad:
    pairs: list[TypingPair] = field(default_factory=list)
    # (receiver, conversation, sender) -> send times not yet seen arriving, oldest first.
    pending: dict[tuple[str, str, str], collections.deque[tuple[float, str]]] = field(
        default_factory=dict
    )
    sent: collections.Counter[str] = field(default_factory=collections.Counter)
    delivered: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    other_frames: collections.Counter[str] = field(default_factory=collections.Counter)
    awaiting: int = 0
    none_awaiting: asyncio.Event = field(default_factory=asyncio.Event)

    def on_frame(self, socket: Device, frame: Frame, at: float) -> None:
        event = str(frame.get("event"))
        if event == "error":
            self.errors.append(f"{socket.user_id}: {frame.get('message')}")
            return
        if event != "typing":
            self.other_frames[event] += 1
            return
        key = (socket.user_id, str(frame.get("conversationId")), str(frame.get("userId")))
        waiting = self.pending.get(key)
        if not waiting:
            self.unexpected.append(f"{key[0]} got typing of {key[2]} in {key[1]}")
            return
        sent_at, phase = waiting.popleft()
        self.delivered[phase] += 1
        self.latencies.setdefault(phase, []).append(at - sent_at)
        self.awaiting -= 1
        if self.awaiting == 0:
            self.none_awaiting.set()

    async def send(self, sockets: Online, index: int, phase: str) -> None:
        pair = self.pairs[index % len(self.pairs)]
        frame = orjson.dumps({"event": "typing", "conversationId": pair.conversation_id})
        key = (pair.receiver, pair.conversation_id, pair.sender)
        self.pending.setdefault(key, collections.deque()).append((time.monotonic(), phase))
        self.awaiting += 1
        self.none_awaiting.clear()
        self.sent[phase] += 1
        sockets[pair.sender].send(frame)

    async def drain(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.none_awaiting.wait(), seconds)
        except TimeoutError:
            return False
        return True


async def send_typing(
    ctx: Context,
    load: TypingLoad,
    online: Online,
    phase: str,
    rate: float,
    seconds: float,
    first: int,
) -> PacedRun:
    count = max(1, round(rate * seconds))
    ctx.progress.say(f"{phase}: {rate:g} typing events/s for {seconds:g}s")
    started = time.monotonic()

    def status() -> str:
        return (
            f"{phase} {time.monotonic() - started:4.1f}/{seconds:g}s: sent {load.sent[phase]}, "
            f"delivered {load.delivered[phase]}, awaiting {load.awaiting}"
        )

    async def send(index: int) -> None:
        await load.send(online, first + index, phase)

    async with ctx.progress.ticking(status):
        return await paced(
            count,
            send,
            rate=rate,
            max_in_flight=5000,
            settle_timeout=10,
            overrun=max(1.0, 0.1 * seconds),
        )


async def run(ctx: Context, options: TypingOptions) -> ScenarioResult:
    size = ring_size(options)
    result = ScenarioResult("typing", {**asdict(options), "ring_users": size})
    load = TypingLoad()
    user_ids = fresh_user_ids(size, ctx.rng)
    # Conversations first, then the users come online (as in the cost scenario).
    ring = [(user_ids[k], user_ids[(k + 1) % size]) for k in range(size)]
    ids = await create_conversations(ctx, [ConversationSpec(a, (b,)) for a, b in ring])
    # All first members, then all second members: consecutive events come from
    # different users, and each pair recurs every 2 * size events.
    load.pairs = [TypingPair(a, b, c) for (a, b), c in zip(ring, ids, strict=True)] + [
        TypingPair(b, a, c) for (a, b), c in zip(ring, ids, strict=True)
    ]
    async with online_users(ctx, user_ids, load.on_frame) as online:
        settle_seconds = await settle(ctx, user_ids)
        sent_before = 0
        if options.warmup > 0:
            await send_typing(ctx, load, online, "warmup", options.rate, options.warmup, 0)
            sent_before = load.sent["warmup"]
        with ctx.cpu.window() as window:
            measured = await send_typing(
                ctx, load, online, "measure", options.rate, options.duration, sent_before
            )
            drained = await load.drain(options.drain_timeout)
        ctx.progress.say(
            f"{'all delivered' if drained else 'drain timed out'}; "
            f"watching {options.duplicate_window:g}s for duplicates"
        )
        await asyncio.sleep(options.duplicate_window)

    sent = sum(load.sent.values())
    delivered = sum(load.delivered.values())
    lag = summarize(measured.lags)
    result.figures.update(
        {
            "ring_users": size,
            **crowd_figures(online, settle_seconds),
            "conversations": len(ids),
            "pairs": len(load.pairs),
            "distinct_senders": len({pair.sender for pair in load.pairs}),
            "pair_interval_s": round(len(load.pairs) / options.rate, 3),
            "offered_rate_per_s": options.rate,
            "achieved_rate_per_s": measured.achieved_rate,
            "not_offered": measured.skipped,
            "send_lag_p99_ms": to_ms(lag.p99) if lag else None,
            "sent": sent,
            "expected": sent,
            # Deliveries in the measured window: CPU per operation divides by these.
            "measured_operations": len(load.latencies.get("measure", [])),
            "delivered": delivered,
            "lost": sent - delivered,
            "duplicates": len(load.unexpected),
            "errors": len(load.errors),
            "delivered_of_expected": f"{delivered}/{sent}",
            **latency_figures("latency", load.latencies.get("measure", [])),
        }
    )
    measured_count = len(load.latencies.get("measure", []))
    cpu = window.per_operation(measured_count)
    result.rows = [{"step": f"typing {options.rate:g}/s", "operations": measured_count, **cpu}]
    result.figures.update(cpu)
    record_setup_retries(result, ctx.messaging)
    if sent != delivered:
        result.problems.append(f"{sent - delivered} of {sent} typing events never arrived")
    if load.unexpected:
        result.problems.append(
            f"{len(load.unexpected)} typing events arrived unexpectedly (duplicates or echoes), "
            f"e.g. {load.unexpected[0]}"
        )
    if load.errors:
        result.problems.append(f"{len(load.errors)} error events, e.g. {load.errors[0]}")
    if load.other_frames:
        result.notes.append(f"other frames received: {dict(load.other_frames)}")
    return result
