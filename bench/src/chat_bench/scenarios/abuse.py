"""abuse: one hostile socket floods the edge (typing frames and garbage, alternating) while a
bystander on the same edge heartbeats; the bystander's heartbeat_ack latency before and during
the flood, and what the edge did to the flooder. Then a stuck client: a socket that stops
reading is sent MEGABYTES of messages; the edge's memory growth against its outbound bound.

The stack chat-bench starts runs the edge's default frame and outbound limits, stated
explicitly (see `stack_env`); only the REST send rate is raised so the senders that fill the
stuck socket are not what is measured.
"""

import asyncio
import contextlib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import aiohttp
import orjson
import uvloop

from chat_bench.pacing import paced
from chat_bench.population import ConversationSpec, create_conversations
from chat_bench.results import ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.sockets import Device, Frame, SocketClosed, StuckSocket, ignore_frames, open_device
from chat_bench.stats import latency_figures, summarize, to_ms
from chat_bench.users import fresh_user_ids

MIB = 1024 * 1024
# The edge's defaults, set explicitly for the stack chat-bench starts (README, Limits).
EDGE_LIMITS = {
    "FRAME_RATE_PER_SECOND": "20",
    "FRAME_BURST": "40",
    "ABUSE_CLOSE_AFTER_SECONDS": "5",
    "INVALID_FRAMES_MAX": "100",
    "INVALID_FRAMES_WINDOW_SECONDS": "10",
    "OUTBOUND_MAX_BYTES": str(MIB),
    "OUTBOUND_MAX_FRAMES": "1000",
    "CLOSE_TIMEOUT_SECONDS": "5",
}
# Senders filling the stuck socket share the load; each stays far below this anyway.
SENDERS = 20
SENDS_AT_ONCE = 40
SEND_ATTEMPTS = 3
# Once it reads again, how long the stuck socket waits to see whether the edge closes it.
STUCK_READ_SECONDS = 5.0


@dataclass(frozen=True)
class AbuseOptions:
    # Bystander heartbeats before the flood (seconds), one every `beat_interval`.
    baseline: float = 5.0
    beat_interval: float = 0.1
    # The flood: frames offered per second, for at most this long (the edge should close
    # the flooder with 1008 after ABUSE_CLOSE_AFTER_SECONDS).
    flood_rate: float = 5000.0
    flood_seconds: float = 10.0
    # Sent to a socket that stopped reading, as messages of `message_chars` characters.
    stuck_megabytes: float = 5.0
    message_chars: int = 3500
    # 1: the flooder runs in a process of its own (started before anything is measured); in
    # the bystander's event loop its sends would delay the very acks being timed. 0: in this
    # process (smoke runs, where only correctness counts).
    flooder_process: int = 1


SMOKE = AbuseOptions(
    baseline=0.5,
    flood_rate=500,
    flood_seconds=1.0,
    stuck_megabytes=0.2,
    message_chars=2000,
    flooder_process=0,
)


def stack_env(_options: AbuseOptions) -> dict[str, str]:
    return {**EDGE_LIMITS, "SEND_RATE_PER_SECOND": "10000", "SEND_BURST": "10000"}


async def _beat_for(bystander: Device, seconds: float, interval: float) -> list[float]:
    round_trips = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        round_trips.append(await asyncio.wait_for(bystander.heartbeat(), 10))
        await asyncio.sleep(interval)
    return round_trips


@dataclass
class FloodOutcome:
    sent: int = 0
    errors_received: int = 0
    rate_limited_errors: int = 0
    other_frames: int = 0
    close_code: int | None = None
    close_reason: str | None = None
    closed_after: float | None = None


def flood_in_process(edge_ws: str, user_id: str, options: AbuseOptions) -> FloodOutcome:
    return uvloop.run(_flood(edge_ws, user_id, options))


def _started() -> bool:
    return True


async def _flood(edge_ws: str, user_id: str, options: AbuseOptions) -> FloodOutcome:
    outcome = FloodOutcome()

    def on_frame(_device: Device, frame: Frame, _at: float) -> None:
        if frame.get("event") == "error":
            outcome.errors_received += 1
            outcome.rate_limited_errors += "rate limited" in str(frame.get("message"))
        else:
            outcome.other_frames += 1

    socket = await open_device(edge_ws, user_id, on_frame)
    typing = orjson.dumps({"event": "typing", "conversationId": "c-flood"})
    garbage = b"{not json"
    started = time.monotonic()
    # Batches every 10 ms: the benchmark's own loop stays responsive for the bystander.
    per_batch = max(1, round(options.flood_rate / 100))
    try:
        while time.monotonic() - started < options.flood_seconds and socket.is_open:
            for _ in range(per_batch):
                socket.send(typing if outcome.sent % 2 == 0 else garbage)
                outcome.sent += 1
            await asyncio.sleep(0.01)
    except SocketClosed:
        pass
    if not socket.is_open:
        # The edge closed it before the flood was over (the close it is expected to earn).
        outcome.closed_after = round(time.monotonic() - started, 2)
        outcome.close_code = socket.close_code if socket.close_code != 1006 else None
        outcome.close_reason = socket.close_reason or None
    await socket.close()
    return outcome


async def _fill_stuck_socket(
    ctx: Context, stuck_user: str, options: AbuseOptions, result: ScenarioResult
) -> None:
    messages = max(1, round(options.stuck_megabytes * 1_000_000 / options.message_chars))
    senders = fresh_user_ids(min(SENDERS, messages), ctx.rng)
    specs = [ConversationSpec(sender, (stuck_user,)) for sender in senders]
    conversations = await create_conversations(ctx, specs)
    refused: list[int] = []

    async def send(index: int) -> None:
        sender = index % len(senders)
        content = f"{ctx.run_tag}-{index}-".ljust(options.message_chars, "x")
        status = 0
        # The same clientMessageId on a retry: the message is stored once.
        for _attempt in range(SEND_ATTEMPTS):
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                status, _ = await ctx.messaging.send_message(
                    senders[sender], conversations[sender], content, f"{ctx.run_tag}-{index}"
                )
            if 0 < status < 500:
                break
        if status != 201:
            refused.append(status)

    async with StuckSocket(ctx.endpoints.edge_ws, stuck_user) as stuck:
        await asyncio.sleep(0.5)  # admitted and bound before the first message
        before = await ctx.edge.get_json("/stats")
        ctx.progress.say(
            f"sending {messages} messages of {options.message_chars} characters "
            f"({options.stuck_megabytes:g} MB) to a socket that stopped reading"
        )
        with ctx.cpu.window() as window:
            await paced(messages, send, rate=None, max_in_flight=SENDS_AT_ONCE, settle_timeout=60)
            await asyncio.sleep(1.0)  # the last deliveries reach the edge
        after = await ctx.edge.get_json("/stats")
        bound = after.get("limits", {}).get("outboundMaxBytes", 0)
        # It reads again: what was written before the edge gave up on it, and the close
        # (none is expected when less than the bound was sent).
        overflowing = messages * options.message_chars > bound
        back = await stuck.read_until_closed(within=STUCK_READ_SECONDS if overflowing else 1)
    result.rows.append(
        {"step": "stuck socket", "operations": messages, **window.per_operation(messages)}
    )
    result.figures.update(
        {
            "stuck_sent_messages": messages,
            "stuck_sent_mib": round(messages * options.message_chars / MIB, 2),
            "stuck_refused_sends": len(refused),
            "stuck_outbound_bound_mib": round(bound / MIB, 2),
            "edge_rss_before_mib": round(before["rssBytes"] / MIB, 1),
            "edge_rss_after_mib": round(after["rssBytes"] / MIB, 1),
            "edge_rss_growth_mib": round((after["rssBytes"] - before["rssBytes"]) / MIB, 2),
            "stuck_frames_read_after": back.frames,
            "stuck_closed_by_edge": back.closed,
            "stuck_close_code": back.code,
        }
    )
    if refused:
        result.problems.append(f"{len(refused)} sends refused: {sorted(set(refused))}")


async def run(ctx: Context, options: AbuseOptions) -> ScenarioResult:
    result = ScenarioResult("abuse", asdict(options))
    bystander_user, flooder_user, stuck_user = fresh_user_ids(3, ctx.rng)
    loop = asyncio.get_running_loop()
    flooder: ProcessPoolExecutor | None = None
    if options.flooder_process:
        flooder = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn")
        )
        await loop.run_in_executor(flooder, _started)
    bystander = await open_device(ctx.endpoints.edge_ws, bystander_user, ignore_frames)
    stats = await ctx.edge.get_json("/stats")
    result.figures["edge_limits"] = orjson.dumps(stats.get("limits", {})).decode()
    ctx.progress.say(f"edge limits: {stats.get('limits')}")
    try:
        ctx.progress.say(f"bystander heartbeats for {options.baseline:g}s before the flood")
        before = await _beat_for(bystander, options.baseline, options.beat_interval)
        flooding: asyncio.Future[FloodOutcome] = (
            loop.run_in_executor(
                flooder, flood_in_process, ctx.endpoints.edge_ws, flooder_user, options
            )
            if flooder is not None
            else asyncio.ensure_future(_flood(ctx.endpoints.edge_ws, flooder_user, options))
        )
        ctx.progress.say(
            f"flood: {options.flood_rate:g} frames/s for up to {options.flood_seconds:g}s"
        )
        during: list[float] = []
        # The edge's work per hostile frame (the flooder's process is not metered).
        with ctx.cpu.window() as window:
            while not flooding.done():
                during.append(await asyncio.wait_for(bystander.heartbeat(), 10))
                await asyncio.sleep(options.beat_interval)
            flood = await flooding
    finally:
        await bystander.close()
        if flooder is not None:
            flooder.shutdown(cancel_futures=True)

    result.rows.append(
        {"step": "flood", "operations": flood.sent, **window.per_operation(flood.sent)}
    )
    result.figures.update(latency_figures("bystander_before", before))
    result.figures.update(latency_figures("bystander_during", during))
    result.figures.update(
        {
            "flood_frames_sent": flood.sent,
            "flood_errors_received": flood.errors_received,
            "flood_rate_limited_errors": flood.rate_limited_errors,
            "flood_other_frames": flood.other_frames,
            "flood_close_code": flood.close_code,
            "flood_close_reason": flood.close_reason,
            "flood_closed_after_s": flood.closed_after,
        }
    )
    # The bar: during the flood, the bystander's p99 within 2x of before, or +10 ms.
    calm, stormy = summarize(before), summarize(during)
    if calm is not None and stormy is not None:
        bar = max(2 * calm.p99, calm.p99 + 0.010)
        result.figures["bystander_p99_bar_ms"] = to_ms(bar)
        result.figures["bystander_p99_within_bar"] = stormy.p99 <= bar
    if flood.errors_received > flood.sent:
        result.problems.append(
            f"the flooder got more answers ({flood.errors_received}) than frames ({flood.sent})"
        )
    await _fill_stuck_socket(ctx, stuck_user, options, result)
    return result
