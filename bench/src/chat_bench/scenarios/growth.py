"""growth: does a user's cost stay flat while other users' data grows?

One user with `conversations` small conversations and one long conversation of
`long_messages` messages is measured over the public API (chat list, history pages at both
ends, an afterSeq page, a send, a read receipt, /sync, a WebSocket resume of `resume_gap`
missed messages). Then `seed` messages of other users are written, and the same is
measured again; each figure is printed at 0 and at N with their ratio.

Seeding writes the store's documents straight to the database (timeline, messages by id,
conversations, the users' conversation index), in the exact shape messaging writes them:
a setup shortcut, as sending millions of messages through REST would take hours here.
Measurements never touch the database.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import timedelta

from chat_bench.cpu import CpuMeter
from chat_bench.results import ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.stats import summarize, to_ms
from chat_bench.users import fresh_user_ids
from chat_client import CaughtUp, ChatClient, Disconnected, RestClient
from chat_core.clock import to_milliseconds, utcnow
from chat_core.contacts import ConversationIndex
from chat_core.db import Database
from chat_core.db import connect as mongo_connect
from chat_core.events import MessageReadReceipt, NewMessage
from chat_core.ids import new_id
from chat_core.store.conversations import Conversation
from chat_core.store.messages import Message

_BATCH = 1000


def random_user(rng: random.Random) -> str:
    (user_id,) = fresh_user_ids(1, rng)
    return user_id


@dataclass(frozen=True)
class GrowthOptions:
    seed: int = 200_000
    long_messages: int = 100_000
    conversations: int = 50
    # Other users' messages go into conversations of this many messages each.
    seed_conversation_size: int = 200
    resume_gap: int = 100
    repeats: int = 20


SMOKE = GrowthOptions(
    seed=2_000,
    long_messages=300,
    conversations=5,
    seed_conversation_size=100,
    resume_gap=10,
    repeats=3,
)


def _message(cid: str, seq: int, sender: str, at_offset: float) -> Message:
    return Message(
        message_id=new_id(),
        conversation_id=cid,
        seq=seq,
        sender_id=sender,
        content=f"seeded {seq}",
        message_type="text",
        created_at=to_milliseconds(utcnow() - timedelta(seconds=at_offset)),
    )


async def _seed_conversation(
    db: Database, participants: tuple[str, ...], count: int, name: str | None = None
) -> Conversation:
    """A conversation of `count` messages in the store's own shape, bulk-inserted."""
    cid = new_id()
    last: Message | None = None
    for start in range(1, count + 1, _BATCH):
        batch = [
            _message(cid, seq, participants[seq % len(participants)], count - seq + 3600)
            for seq in range(start, min(start + _BATCH, count + 1))
        ]
        # Positions and by-id documents share the store's one collection (store version 3).
        documents = [doc for m in batch for doc in (m.timeline_document(), m.to_document())]
        await db.timeline.insert_many(documents, ordered=False)
        last = batch[-1]
    conversation = Conversation(
        cid,
        participants,
        name,
        to_milliseconds(utcnow() - timedelta(days=1)),
        last_seq=count,
        last_message=last,
    )
    await db.conversations.insert_one(conversation.to_document())
    await ConversationIndex(db).record(cid, participants)
    return conversation


async def _timed(repeats: int, call: Callable[[], Awaitable[object]]) -> float | None:
    """The median milliseconds of `repeats` calls (after one unmeasured warm-up)."""
    await call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    summary = summarize(samples)
    return to_ms(summary.p50) if summary else None


@dataclass(frozen=True)
class _User:
    """The measured user (and the peer of its long conversation), through chat_client: the
    project's own Python client, as an app built on it would call the API."""

    edge_ws: str
    user_id: str
    rest: RestClient
    peer: RestClient

    def device(self, since: str | None = None) -> ChatClient:
        return ChatClient(self.edge_ws, self.user_id, since=since, replay_timeout=60)


async def _measure(
    user: _User, long: Conversation, repeats: int, gap: int, meter: CpuMeter
) -> dict[str, float | None]:
    """Each REST figure's median latency and the servers' CPU per call (`..._cpu_ms`)."""
    cid = long.conversation_id
    rest = user.rest
    oldest = await rest.history(cid, after_seq=20, limit=1)
    near_start = oldest["items"][0]["messageId"]
    figures: dict[str, float | None] = {}

    async def timed(name: str, call: Callable[[], Awaitable[object]]) -> None:
        with meter.window() as window:
            figures[f"{name}_ms"] = await _timed(repeats, call)
        cpu = window.per_operation(repeats + 1).get("cpu_ms_per_op_servers")
        figures[f"{name}_cpu_ms"] = cpu

    await timed("chat_list", lambda: rest.conversations(limit=50))
    await timed("history_newest", lambda: rest.history(cid, limit=20))
    await timed("history_oldest", lambda: rest.history(cid, limit=20, before=near_start))
    middle = long.last_seq // 2
    await timed("after_seq_page", lambda: rest.history(cid, after_seq=middle, limit=20))
    await timed("send", lambda: rest.send_message(cid, "measured"))
    seen = str((await user.peer.send_message(cid, "seen"))["messageId"])
    await timed("sync", lambda: rest.sync(seen))
    figures["read_receipt_ms"] = await _receipt(user, cid, seen, repeats)
    figures["resume_ms"] = await _resume(user, cid, seen, gap)
    return figures


async def _receipt(user: _User, cid: str, message_id: str, repeats: int) -> float | None:
    """From a phone's message_read to the laptop's copy of the receipt (one round trip
    through the edge, the broker, messaging's read-state write, and back)."""
    async with user.device() as phone, user.device() as laptop:
        await asyncio.gather(phone.round_trip(30), laptop.round_trip(30))

        async def once() -> None:
            await phone.mark_read(cid, message_id)
            await laptop.wait_for(lambda event: isinstance(event, MessageReadReceipt), 30)

        return await _timed(repeats, once)


async def _resume(user: _User, cid: str, seen: str, gap: int) -> float | None:
    """A device resuming after `gap` missed messages: connect to caught up."""
    for _ in range(gap):
        await user.peer.send_message(cid, "missed")
    started = time.perf_counter()
    replayed = 0
    async with user.device(since=seen) as device:
        async for event in device.events():
            if isinstance(event, NewMessage):
                replayed += 1
            elif isinstance(event, CaughtUp):
                if event.via != "replay":
                    raise RuntimeError(f"resume caught up by {event.via}, not by the replay")
                break
            elif isinstance(event, Disconnected):
                raise RuntimeError(f"resume: the socket closed ({event.code} {event.reason})")
        elapsed = time.perf_counter() - started
    if replayed < gap:
        raise RuntimeError(f"resume replayed {replayed} of {gap} missed messages")
    return to_ms(elapsed)


async def run(ctx: Context, options: GrowthOptions) -> ScenarioResult:
    result = ScenarioResult("growth", asdict(options))
    mongo = mongo_connect(ctx.mongo_url)
    db = mongo[ctx.endpoints.mongo_db]
    user_id, peer = random_user(ctx.rng), random_user(ctx.rng)
    try:
        ctx.progress.say(
            f"seeding the user's {options.conversations} conversations and one of "
            f"{options.long_messages} messages"
        )
        for _ in range(options.conversations):
            await _seed_conversation(db, (user_id, random_user(ctx.rng)), 5)
        long = await _seed_conversation(db, (user_id, peer), options.long_messages, "long")
        async with (
            RestClient(ctx.endpoints.messaging, user_id, timeout=60) as rest,
            RestClient(ctx.endpoints.messaging, peer, timeout=60) as peer_rest,
        ):
            user = _User(ctx.endpoints.edge_ws, user_id, rest, peer_rest)
            before = await _measure(user, long, options.repeats, options.resume_gap, ctx.cpu)
            ctx.progress.say(f"at 0: {before}")
            started = time.monotonic()
            seeded = 0
            while seeded < options.seed:
                size = min(options.seed_conversation_size, options.seed - seeded)
                others = (random_user(ctx.rng), random_user(ctx.rng))
                await _seed_conversation(db, others, size)
                seeded += size
                if seeded % 20_000 < size:
                    ctx.progress.say(f"seeded {seeded} of {options.seed} messages")
            ctx.progress.say(f"seeded {seeded} messages in {time.monotonic() - started:.0f}s")
            after = await _measure(user, long, options.repeats, options.resume_gap, ctx.cpu)
    finally:
        await mongo.close()
    for name, value in before.items():
        grown = after[name]
        result.figures[f"{name}_at_0"] = value
        result.figures[f"{name}_at_n"] = grown
        result.figures[f"{name}_ratio"] = (
            round(grown / value, 2) if value and grown is not None else None
        )
    result.figures["seeded_messages"] = options.seed
    result.notes.append(
        "targets: every ratio <= 1.2; chat list <= 50 ms; history <= 10 ms; resume of 100 <= 100 ms"
    )
    return result
