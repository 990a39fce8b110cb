"""fanout: one message to a conversation whose M members are all online; how long until the
last member has it. One round at a time, so each round sees an idle stack."""

import asyncio
import collections
import time
from dataclasses import asdict, dataclass, field

from chat_bench.population import (
    ConversationSpec,
    create_conversations,
    crowd_figures,
    online_users,
    record_setup_retries,
    settle,
)
from chat_bench.rest import RestError
from chat_bench.results import ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.sockets import Device, Frame
from chat_bench.stats import latency_figures, to_ms
from chat_bench.users import fresh_user_ids


@dataclass(frozen=True)
class FanoutOptions:
    members: int = 1000
    rounds: int = 5
    # Rounds sent and waited for before the measured ones.
    warmup: int = 1
    round_timeout: float = 10.0
    duplicate_window: float = 1.0


SMOKE = FanoutOptions(members=20, rounds=2, warmup=1, round_timeout=5, duplicate_window=0.5)


@dataclass
class Round:
    number: int
    content: str
    members: frozenset[str]
    sent_at: float = 0.0
    answered_at: float | None = None
    arrivals: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    everyone: asyncio.Event = field(default_factory=asyncio.Event)

    def arrive(self, user_id: str, at: float) -> None:
        if user_id in self.arrivals:
            self.duplicates += 1
            return
        self.arrivals[user_id] = at
        if len(self.arrivals) == len(self.members):
            self.everyone.set()

    def latencies(self) -> list[float]:
        return [at - self.sent_at for at in self.arrivals.values()]


@dataclass
class FanoutLoad:
    tag: str
    rounds: dict[str, Round] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    other_frames: collections.Counter[str] = field(default_factory=collections.Counter)
    echoes: int = 0
    sender: str = ""

    def on_frame(self, socket: Device, frame: Frame, at: float) -> None:
        event = str(frame.get("event"))
        if event != "new_message":
            self.other_frames[event] += 1
            return
        found = self.rounds.get(str(frame.get("content")))
        if found is None:
            self.unexpected.append(f"{socket.user_id}: {frame.get('content')!r}")
        elif socket.user_id == self.sender:
            self.echoes += 1
        elif socket.user_id in found.members:
            found.arrive(socket.user_id, at)
        else:
            self.unexpected.append(f"{socket.user_id} is no member but got round {found.number}")


async def create_group(ctx: Context, sender: str, members: list[str]) -> str:
    try:
        (conversation_id,) = await create_conversations(
            ctx, [ConversationSpec(sender, tuple(members), f"bench fan-out {ctx.run_tag}")]
        )
    except RestError as error:
        if error.status == 422:
            raise RuntimeError(
                f"messaging refused a conversation of {len(members) + 1}: {error}. "
                f"Run it with MAX_PARTICIPANTS>={len(members) + 1}"
            ) from error
        raise
    return conversation_id


async def send_round(
    ctx: Context,
    sender: str,
    conversation_id: str,
    current: Round,
    options: FanoutOptions,
) -> None:
    current.sent_at = time.monotonic()
    status, body = await ctx.messaging.send_message(
        sender, conversation_id, current.content, f"bench-{current.content}"
    )
    current.answered_at = time.monotonic()
    if status != 201:
        raise RestError("POST message", status, body)
    label = "warm-up round" if current.number < options.warmup else "round"
    try:
        await asyncio.wait_for(current.everyone.wait(), options.round_timeout)
    except TimeoutError:
        ctx.progress.say(
            f"{label} {current.number}: only {len(current.arrivals)} of "
            f"{len(current.members)} members got it in {options.round_timeout:g}s"
        )
        return
    last = max(current.arrivals.values()) - current.sent_at
    ctx.progress.say(
        f"{label} {current.number}: last of {len(current.members)} members after "
        f"{to_ms(last):.1f} ms"
    )


async def run(ctx: Context, options: FanoutOptions) -> ScenarioResult:
    result = ScenarioResult("fanout", asdict(options))
    load = FanoutLoad(tag=ctx.run_tag)
    sender, *members = fresh_user_ids(options.members + 1, ctx.rng)
    load.sender = sender
    rounds: list[Round] = []
    # Online before the conversation exists, as a group is usually made among people
    # already using the app: each connection then has no contacts to tell yet.
    async with online_users(ctx, [sender, *members], load.on_frame) as online:
        conversation_id = await create_group(ctx, sender, members)
        settle_seconds = await settle(ctx, [sender, *members])
        member_set = frozenset(members)

        async def one_round(number: int) -> None:
            current = Round(number, f"{ctx.run_tag}:fanout:{number}", member_set)
            load.rounds[current.content] = current
            rounds.append(current)
            await send_round(ctx, sender, conversation_id, current, options)

        for number in range(options.warmup):
            await one_round(number)
        with ctx.cpu.window() as window:
            for number in range(options.warmup, options.warmup + options.rounds):
                await one_round(number)
        await asyncio.sleep(options.duplicate_window)

    measured = rounds[options.warmup :]
    complete = [r for r in measured if r.everyone.is_set()]
    last_deliveries = [max(r.arrivals.values()) - r.sent_at for r in complete]
    expected = len(rounds) * options.members
    delivered = sum(len(r.arrivals) for r in rounds)
    duplicates = sum(r.duplicates for r in rounds)
    slowest = latency_figures("last_delivery", last_deliveries)
    result.figures.update(
        {
            "members": options.members,
            "rounds": len(measured),
            **crowd_figures(online, settle_seconds),
            "last_delivery_p50_ms": slowest["last_delivery_p50_ms"],
            "last_delivery_max_ms": slowest["last_delivery_max_ms"],
            "first_delivery_min_ms": (
                to_ms(min(min(r.latencies()) for r in complete)) if complete else None
            ),
            **latency_figures("member_latency", [x for r in measured for x in r.latencies()]),
            **latency_figures(
                "rest", [r.answered_at - r.sent_at for r in measured if r.answered_at]
            ),
            "expected": expected,
            "delivered": delivered,
            "lost": expected - delivered,
            "duplicates": duplicates,
            "delivered_of_expected": f"{delivered}/{expected}",
            "sender_echoes": load.echoes,
        }
    )
    # Per member delivery: what one recipient of a group message costs each process.
    cpu = window.per_operation(sum(len(r.arrivals) for r in measured))
    result.rows = [{"step": f"fanout to {options.members}", "operations": len(measured), **cpu}]
    result.figures.update(cpu)
    record_setup_retries(result, ctx.messaging)
    if delivered != expected:
        result.problems.append(f"{expected - delivered} of {expected} member deliveries missing")
    if duplicates:
        result.problems.append(f"{duplicates} duplicate deliveries")
    if load.unexpected:
        result.problems.append(
            f"{len(load.unexpected)} unexpected frames, e.g. {load.unexpected[0]}"
        )
    if load.other_frames:
        result.notes.append(f"other frames received: {dict(load.other_frames)}")
    return result
