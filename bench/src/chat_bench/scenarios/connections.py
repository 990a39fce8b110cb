"""connections: C idle, authenticated connections held on one edge process while every one of
them heartbeats at the app's interval: connect rate, the edge's RSS before and after (its
GET /stats), RSS per connection, heartbeat_ack latency while all are open."""

import asyncio
import collections
import resource
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from chat_bench.pacing import paced
from chat_bench.population import Online, bring_online
from chat_bench.results import ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.sockets import BenchSocket, Frame
from chat_bench.stats import latency_figures, per_second
from chat_bench.users import fresh_user_ids

HEARTBEAT_TIMEOUT = 10.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class ConnectionsOptions:
    connections: int = 10_000
    connect_concurrency: int = 200
    # Connections started per second; 0: as fast as the concurrency allows.
    connect_rate: float = 0.0
    warmup: float = 5.0
    duration: float = 30.0
    close_timeout: float = 30.0


SMOKE = ConnectionsOptions(
    connections=50,
    connect_concurrency=20,
    warmup=0.5,
    duration=2,
    close_timeout=10,
)


async def edge_stats(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/stats")
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def mib(value: object) -> float | None:
    return round(value / MIB, 1) if isinstance(value, int) else None


async def hold_with_heartbeats(
    ctx: Context, online: Online, options: ConnectionsOptions
) -> tuple[dict[str, list[float]], list[str]]:
    """Every socket heartbeats once per interval, spread evenly; acks timed per phase."""
    sockets = list(online.sockets.values())
    rate = len(sockets) / ctx.heartbeat_interval
    total = options.warmup + options.duration
    count = max(1, round(rate * total))
    round_trips: dict[str, list[float]] = {"warmup": [], "measure": []}
    failures: list[str] = []

    async def beat(index: int) -> None:
        socket = sockets[index % len(sockets)]
        phase = "warmup" if index / rate < options.warmup else "measure"
        try:
            round_trips[phase].append(await asyncio.wait_for(socket.heartbeat(), HEARTBEAT_TIMEOUT))
        except Exception as error:
            failures.append(f"{socket.user_id}: {type(error).__name__}: {error}")

    started = time.monotonic()

    def status() -> str:
        return (
            f"holding {len(sockets)} connections {time.monotonic() - started:4.1f}/{total:g}s, "
            f"{rate:.0f} heartbeats/s: {sum(map(len, round_trips.values()))} acked, "
            f"{len(failures)} failed"
        )

    ctx.progress.say(
        f"holding: {rate:.0f} heartbeats/s for {total:g}s ({options.warmup:g}s warm-up)"
    )
    async with ctx.progress.ticking(status):
        await paced(
            count,
            beat,
            rate=rate,
            max_in_flight=len(sockets) * 2,
            settle_timeout=HEARTBEAT_TIMEOUT + 5,
        )
    return round_trips, failures


async def wait_for_edge_count(
    http: httpx.AsyncClient, at_most: int, seconds: float
) -> dict[str, Any]:
    """Poll /stats until the edge reports at most `at_most` connections (or the deadline)."""
    deadline = time.monotonic() + seconds
    while True:
        stats = await edge_stats(http)
        if stats.get("connections", 0) <= at_most or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.2)


async def run(ctx: Context, options: ConnectionsOptions) -> ScenarioResult:
    if ctx.heartbeat_interval <= 0:
        raise ValueError("the connections scenario needs --heartbeat-interval > 0")
    result = ScenarioResult(
        "connections", {**asdict(options), "heartbeat_interval": ctx.heartbeat_interval}
    )
    other_frames: collections.Counter[str] = collections.Counter()

    def on_frame(_socket: BenchSocket, frame: Frame, _at: float) -> None:
        other_frames[str(frame.get("event"))] += 1

    async with httpx.AsyncClient(
        base_url=ctx.endpoints.edge, trust_env=False, timeout=10.0
    ) as http:
        before = await edge_stats(http)
        ctx.progress.say(
            f"edge {before.get('edgeId')}: {before.get('connections')} connections, "
            f"RSS {mib(before.get('rssBytes'))} MiB; opening {options.connections}"
        )
        user_ids = fresh_user_ids(options.connections, ctx.rng)
        online = await bring_online(
            ctx.endpoints.edge_ws,
            user_ids,
            on_frame,
            ctx.progress,
            concurrency=options.connect_concurrency,
            rate=options.connect_rate or None,
        )
        try:
            opened = len(online.sockets)
            after_connect = await edge_stats(http)
            round_trips, heartbeat_failures = await hold_with_heartbeats(ctx, online, options)
            after_hold = await edge_stats(http)
            dropped = [s.user_id for s in online.sockets.values() if s.close_code is not None]
        finally:
            ctx.progress.say(f"closing {len(online.sockets)} connections")
            closing_started = time.monotonic()
            await online.close()
            close_seconds = time.monotonic() - closing_started
        after_close = await wait_for_edge_count(
            http, int(before.get("connections", 0)), options.close_timeout
        )

    rss_before, rss_after = before.get("rssBytes"), after_connect.get("rssBytes")
    per_connection = (
        round((rss_after - rss_before) / opened / 1024, 2)
        if isinstance(rss_before, int) and isinstance(rss_after, int) and opened
        else None
    )
    result.figures.update(
        {
            "edge_id": str(before.get("edgeId")),
            "connections_requested": options.connections,
            "connections_open": opened,
            "connect_failures": len(online.failures),
            "connect_seconds": round(online.seconds, 2),
            "connect_rate_per_s": per_second(opened, online.seconds),
            **latency_figures("connect", online.connect_latencies),
            "edge_connections_reported": after_connect.get("connections"),
            "edge_rss_before_mib": mib(rss_before),
            "edge_rss_after_connect_mib": mib(rss_after),
            "edge_rss_after_hold_mib": mib(after_hold.get("rssBytes")),
            "rss_per_connection_kib": per_connection,
            "heartbeat_rate_per_s": round(opened / ctx.heartbeat_interval, 1),
            **latency_figures("heartbeat_ack", round_trips["measure"]),
            "heartbeat_failures": len(heartbeat_failures),
            "dropped_while_held": len(dropped),
            "close_seconds": round(close_seconds, 2),
            "edge_connections_after_close": after_close.get("connections"),
            "bench_max_rss_mib": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
            ),
        }
    )
    if online.failures:
        result.problems.append(
            f"{len(online.failures)} connections failed, e.g. {online.failures[0]}"
        )
    expected_on_edge = int(before.get("connections", 0)) + opened
    if after_connect.get("connections") != expected_on_edge:
        result.notes.append(
            f"edge reported {after_connect.get('connections')} connections, expected "
            f"{expected_on_edge} (others may share this edge)"
        )
    if heartbeat_failures:
        result.problems.append(
            f"{len(heartbeat_failures)} heartbeats unanswered, e.g. {heartbeat_failures[0]}"
        )
    if dropped:
        result.problems.append(f"{len(dropped)} connections closed while held idle")
    if after_close.get("connections", 0) > before.get("connections", 0):
        result.problems.append(
            f"edge still reports {after_close.get('connections')} connections "
            f"{options.close_timeout:g}s after all were closed"
        )
    if other_frames:
        result.notes.append(f"other frames received: {dict(other_frames)}")
    return result
