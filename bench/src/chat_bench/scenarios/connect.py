"""connect: `--connections` 5,000 fresh users connect to one edge (`--connect-concurrency` 200
handshakes in flight; a socket counts once its first heartbeat_ack is back, i.e. admitted and
routed). Connects per second and CPU ms per connect for every process over the storm; the
edge's RSS per idle socket (its `GET /stats`, before and `--settle` s after); then, right
after, heartbeats at `--beat-rate` 500/s over the held sockets for `--beat-seconds`:
heartbeat_ack p50/p99 and CPU per heartbeat."""

import asyncio
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from chat_bench.population import bring_online
from chat_bench.results import ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.sockets import Device, Frame
from chat_bench.stats import latency_figures, per_second
from chat_bench.users import fresh_user_ids

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class ConnectOptions:
    connections: int = 5000
    connect_concurrency: int = 200
    beat_rate: float = 500.0
    beat_seconds: float = 10.0
    # Pause after the last connect before the RSS is read (buffers, GC).
    settle: float = 2.0
    close_timeout: float = 30.0


SMOKE = ConnectOptions(
    connections=50, connect_concurrency=20, beat_rate=50, beat_seconds=1, settle=0.2
)


def mib(value: object) -> float | None:
    return round(value / MIB, 1) if isinstance(value, int) else None


async def edge_count_at_most(ctx: Context, at_most: int, seconds: float) -> dict[str, Any]:
    """Poll /stats until the edge reports at most `at_most` connections (or the deadline)."""
    deadline = time.monotonic() + seconds
    while True:
        stats: dict[str, Any] = await ctx.edge.get_json("/stats")
        if stats.get("connections", 0) <= at_most or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.2)


async def run(ctx: Context, options: ConnectOptions) -> ScenarioResult:
    result = ScenarioResult("connect", asdict(options))
    other_frames: Counter[str] = Counter()

    def on_frame(_device: Device, frame: Frame, _at: float) -> None:
        other_frames[str(frame.get("event"))] += 1

    before: dict[str, Any] = await ctx.edge.get_json("/stats")
    ctx.progress.say(f"edge {before.get('edgeId')}: opening {options.connections} sockets")
    user_ids = fresh_user_ids(options.connections, ctx.rng)
    with ctx.cpu.window() as storm:
        online = await bring_online(
            ctx, user_ids, on_frame, concurrency=options.connect_concurrency
        )
    opened = len(online.devices)
    await asyncio.sleep(options.settle)
    after: dict[str, Any] = await ctx.edge.get_json("/stats")
    devices = list(online.devices.values())
    failures: list[str] = []
    beats = max(1, round(options.beat_rate * options.beat_seconds)) if devices else 0
    ctx.progress.say(f"heartbeats: {options.beat_rate:g}/s for {options.beat_seconds:g}s")
    try:
        with ctx.cpu.window() as beating:
            paced_beats = await online.heartbeats(options.beat_rate, beats, failures)
        round_trips = online.heartbeat_round_trips
        dropped = sum(not d.is_open for d in devices)
    finally:
        ctx.progress.say(f"closing {opened} sockets")
        closing = time.monotonic()
        await online.close()
        close_seconds = time.monotonic() - closing
    after_close = await edge_count_at_most(
        ctx, int(before.get("connections", 0)), options.close_timeout
    )

    rss_before, rss_after = before.get("rssBytes"), after.get("rssBytes")
    per_socket = (
        round((rss_after - rss_before) / opened / KIB, 2)
        if isinstance(rss_before, int) and isinstance(rss_after, int) and opened
        else None
    )
    connect_cpu = storm.per_operation(opened)
    beat_cpu = beating.per_operation(len(round_trips))
    result.rows = [
        {"step": "connect", "operations": opened, **connect_cpu},
        {
            "step": "heartbeat",
            "operations": len(round_trips),
            **beat_cpu,
        },
    ]
    result.figures.update(
        {
            "connections_requested": options.connections,
            "connections_open": opened,
            "connect_failures": len(online.failures),
            "connect_rate_per_s": per_second(opened, online.seconds),
            **latency_figures("connect", online.connect_latencies),
            "edge_rss_before_mib": mib(rss_before),
            "edge_rss_after_mib": mib(rss_after),
            "edge_rss_per_socket_kib": per_socket,
            "heartbeat_rate_per_s": options.beat_rate,
            "heartbeat_achieved_per_s": paced_beats.achieved_rate,
            **latency_figures("heartbeat_ack", round_trips),
            "heartbeat_failures": len(failures),
            "dropped_while_held": dropped,
            "close_seconds": round(close_seconds, 2),
            "edge_connections_after_close": after_close.get("connections"),
            **connect_cpu,
        }
    )
    if online.failures:
        result.problems.append(f"{len(online.failures)} connects failed: {online.failures[0]}")
    if failures:
        result.problems.append(f"{len(failures)} heartbeats unanswered: {failures[0]}")
    if dropped:
        result.problems.append(f"{dropped} sockets closed while held idle")
    if after_close.get("connections", 0) > before.get("connections", 0):
        result.problems.append(
            f"edge still reports {after_close.get('connections')} connections "
            f"{options.close_timeout:g}s after all were closed"
        )
    if other_frames:
        result.notes.append(f"other frames received: {dict(other_frames)}")
    return result
