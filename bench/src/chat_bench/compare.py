"""chat-bench compare: this stack and Centrifugo v6.9.1 side by side, driven by the same load
generator on the same machine, one after the other (never at once: they share two cores).

For each stack, each phase on a fresh server (ours: the stack every scenario starts):
  1. idle sockets: the server's RSS (/proc/<pid>/status) before and after N sockets connect,
     KiB per socket; connects per second; on our side, heartbeat_ack round trips of a few
     probe sockets while the N connect;
  2. send -> recipient socket latency at a steady rate, open loop: ours through the messaging
     REST API (persisted, then routed over RabbitMQ: the e2e scenario itself), Centrifugo
     through its HTTP API `publish` to the recipient's personal channel (memory only);
  3. CPU ms per operation for every process (cpu.py), per connect and per send.
Then a table with ratios (ours / Centrifugo) and the JSON summary as the last line.
docs/performance.md ("Side by side with Centrifugo") says what each side measures.
"""

import argparse
import asyncio
import contextlib
import gc
import os
import random
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from chat_bench import report
from chat_bench.catalog import RAISED_LIMITS
from chat_bench.centrifugo import (
    CentrifugoConfig,
    CentrifugoSocket,
    CentrifugoUnavailable,
    OwnedCentrifugo,
    PublishApi,
    Push,
    PushHandler,
    binary,
    free_unreserved_port,
    ignore_pushes,
)
from chat_bench.cpu import CpuMeter, cpu_seconds, pid_listening_on, port_of
from chat_bench.limits import raise_open_file_limit, shortfall
from chat_bench.pacing import PacedRun, paced
from chat_bench.population import CONNECT_TIMEOUT, bring_online
from chat_bench.progress import Progress
from chat_bench.results import Figure, ScenarioResult
from chat_bench.scenarios import e2e
from chat_bench.scenarios.context import Context
from chat_bench.scenarios.crowd import CONNECT_CONCURRENCY
from chat_bench.sockets import BenchSocket, ignore_frames
from chat_bench.stack import Endpoints, OwnedStack, StackError, check_infrastructure
from chat_bench.stats import latency_figures, per_second
from chat_bench.users import fresh_user_ids

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MONGO_URL = "mongodb://127.0.0.1:27017/"
EXIT_INCORRECT = 1
EXIT_USAGE = 2
DASH = "\N{EN DASH}"
PUBLISH_TIMEOUT = 10.0
# Before each phase: the shared database and broker together below this share of one core
# over a sample, waiting at most this long.
QUIET_CPU_FRACTION = 0.10
QUIET_SAMPLE_SECONDS = 1.0
QUIET_WITHIN_SECONDS = 60.0
# The app's heartbeat interval: presence expires users who do not heartbeat.
APP_HEARTBEAT_SECONDS = 30.0


@dataclass(frozen=True)
class CompareOptions:
    # Idle sockets held at once (memory per socket, connects per second).
    sockets: int = 5000
    connect_concurrency: int = 200
    # Users online during the latency phase (our side: in users/2 one-to-one conversations).
    users: int = 1000
    rate: float = 200.0
    duration: float = 30.0
    warmup: float = 5.0
    drain_timeout: float = 10.0
    # Sockets already open that heartbeat while the N connect (ours), and how often in all.
    probes: int = 10
    probe_rate: float = 20.0
    # Pause after the last connect before the RSS is read (buffers, GC).
    settle: float = 2.0
    # Our side waits at most this long for presence to absorb the latency phase's users.
    presence_settle_timeout: float = 120.0


SMOKE = CompareOptions(
    sockets=50,
    connect_concurrency=20,
    users=20,
    rate=20.0,
    duration=1.5,
    warmup=0.5,
    drain_timeout=5.0,
    probes=2,
    probe_rate=10.0,
    settle=0.2,
    presence_settle_timeout=5.0,
)


# --- /proc ------------------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def kib_per_socket(before: int | None, after: int | None, sockets: int) -> float | None:
    if before is None or after is None or sockets <= 0:
        return None
    return round((after - before) / sockets, 2)


def cpu_figures(meter: CpuMeter, operation: str, count: int) -> dict[str, Figure]:
    """`cpu_ms_per_<operation>_<role>`, `..._server` (every process but the load generator)
    and `..._total`."""
    if count <= 0 or not meter.spent:
        return {}
    figures: dict[str, Figure] = {}
    for role, seconds in sorted(meter.spent.items()):
        key = role.replace(" ", "_").replace("-", "_")
        figures[f"cpu_ms_per_{operation}_{key}"] = round(seconds * 1000 / count, 3)
    server = sum(s for role, s in meter.spent.items() if role != "load generator")
    figures[f"cpu_ms_per_{operation}_server"] = round(server * 1000 / count, 3)
    figures[f"cpu_ms_per_{operation}_total"] = round(sum(meter.spent.values()) * 1000 / count, 3)
    return figures


@dataclass
class Side:
    """One stack's figures (unprefixed), problems and notes."""

    name: str
    figures: dict[str, Figure] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Per phase ("idle", "send"), each on a fresh server: role -> pid.
    processes: dict[str, dict[str, int]] = field(default_factory=dict)


# --- our stack ----------------------------------------------------------------------------


async def probe_heartbeats(
    probes: Sequence[BenchSocket],
    rate: float,
    stop: asyncio.Event,
    round_trips: list[float],
    failures: list[str],
) -> None:
    """Heartbeats from already-open sockets, `rate` per second in all, from now until `stop`;
    then every one still in flight is waited for (the first starts at once, so a storm
    however short is sampled)."""

    async def beat(socket: BenchSocket) -> None:
        try:
            round_trips.append(await asyncio.wait_for(socket.heartbeat(), CONNECT_TIMEOUT))
        except Exception as error:
            failures.append(f"{socket.user_id}: {type(error).__name__}: {error}")

    in_flight: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    index = 0
    while not stop.is_set():
        task = asyncio.create_task(beat(probes[index % len(probes)]))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        index += 1
        # On schedule (open loop): a slow ack does not delay the next heartbeat.
        due = started + index / rate
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
    if in_flight:
        await asyncio.wait(set(in_flight))


async def ours_idle(
    side: Side,
    edge_ws: str,
    edge_pid: int,
    meter: CpuMeter,
    options: CompareOptions,
    rng: random.Random,
    progress: Progress,
) -> None:
    ids = fresh_user_ids(options.probes + options.sockets, rng)
    probe_ids, socket_ids = ids[: options.probes], ids[options.probes :]
    probes = await bring_online(
        edge_ws, probe_ids, ignore_frames, progress, concurrency=max(1, options.probes)
    )
    if probes.failures:
        side.problems.append(f"probe sockets failed to connect, e.g. {probes.failures[0]}")
    round_trips: list[float] = []
    probe_failures: list[str] = []
    before = rss_kib(edge_pid)
    storm_over = asyncio.Event()
    probing = (
        asyncio.create_task(
            probe_heartbeats(
                list(probes.sockets.values()),
                options.probe_rate,
                storm_over,
                round_trips,
                probe_failures,
            )
        )
        if probes.sockets and options.probe_rate > 0
        else None
    )
    try:
        with meter.window():
            online = await bring_online(
                edge_ws,
                socket_ids,
                ignore_frames,
                progress,
                concurrency=options.connect_concurrency,
            )
    finally:
        storm_over.set()
        if probing is not None:
            await probing
    try:
        await asyncio.sleep(options.settle)
        after = rss_kib(edge_pid)
        opened = len(online.sockets)
        dropped = sum(s.close_code is not None for s in online.sockets.values())
    finally:
        progress.say(f"closing {len(online.sockets)} idle sockets")
        await online.close()
        await probes.close()
    side.figures.update(
        {
            "sockets_open": opened,
            "server_rss_before_kib": before,
            "server_rss_after_kib": after,
            "rss_per_socket_kib": kib_per_socket(before, after, opened),
            "connect_seconds": round(online.seconds, 2),
            "connect_rate_per_s": per_second(opened, online.seconds),
            **latency_figures("connect", online.connect_latencies),
            **latency_figures("heartbeat_ack_while_connecting", round_trips),
            "heartbeat_ack_failures": len(probe_failures),
            **cpu_figures(meter, "connect", opened),
        }
    )
    if online.failures:
        side.problems.append(
            f"{len(online.failures)} connections failed, e.g. {online.failures[0]}"
        )
    if probe_failures:
        side.problems.append(
            f"{len(probe_failures)} probe heartbeats unanswered, e.g. {probe_failures[0]}"
        )
    if dropped:
        side.problems.append(f"{dropped} idle sockets were closed by the server")


@contextlib.asynccontextmanager
async def our_stack(
    args: argparse.Namespace, side: Side, phase: str, progress: Progress
) -> AsyncIterator[tuple[Endpoints, CpuMeter]]:
    """A fresh stack, as every scenario gets: no phase inherits another's backlog (5,000
    sockets closing leave the edge and presence minutes of unbinding and expiring). Its
    processes are recorded for the phase and metered, as centrifugo_server's are."""
    stack = OwnedStack(args.amqp_url, args.mongo_url, dict(RAISED_LIMITS), progress)
    try:
        endpoints = await stack.start(args.ready_timeout)
        meter = CpuMeter.for_stack(endpoints.by_service(), args.amqp_url, args.mongo_url)
        side.processes[phase] = dict(meter.pids)
        yield endpoints, meter
    finally:
        await stack.stop()


async def wait_until_quiet(
    args: argparse.Namespace, progress: Progress, *, within: float = QUIET_WITHIN_SECONDS
) -> float | None:
    """Wait until the shared database and broker are near idle: the previous phase's stack
    leaves them work (its database dropped, its queues deleted, presence writes draining)
    that would otherwise land in the next phase, whichever stack that measures. Seconds
    waited, or None when they were still busy at the deadline (measured anyway)."""
    pids = [
        pid
        for pid in (
            pid_listening_on(port_of(args.amqp_url, 5672)),
            pid_listening_on(port_of(args.mongo_url, 27017)),
        )
        if pid is not None
    ]
    started = time.monotonic()
    while time.monotonic() - started < within:
        before = [cpu_seconds(pid) or 0.0 for pid in pids]
        await asyncio.sleep(QUIET_SAMPLE_SECONDS)
        busy = sum((cpu_seconds(pid) or 0.0) - b for pid, b in zip(pids, before, strict=True))
        if busy <= QUIET_CPU_FRACTION * QUIET_SAMPLE_SECONDS:
            return round(time.monotonic() - started, 1)
    progress.say(f"database and broker still busy after {within:g}s; measuring anyway")
    return None


async def run_phase(
    side: Side,
    phase: str,
    work: Coroutine[Any, Any, None],
    args: argparse.Namespace,
    progress: Progress,
) -> None:
    """One phase's failure is reported and the next phase still runs."""
    waited = await wait_until_quiet(args, progress)
    side.figures[f"{phase.replace(' ', '_')}_quiet_wait_seconds"] = waited
    # No cyclic garbage collection inside a phase (reference counting still frees nearly
    # everything): each full collection walks every socket's objects and stalled this
    # process 100-450 ms (measured, even with gc.freeze() at the phase start), which landed in
    # the p99 of whichever stack was measured. Cycles are collected between phases.
    gc.collect()
    gc.disable()
    try:
        await work
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        side.problems.append(f"{phase} failed: {type(error).__name__}: {error}")
    finally:
        gc.enable()
        gc.collect()


async def ours_idle_phase(
    side: Side,
    options: CompareOptions,
    args: argparse.Namespace,
    rng: random.Random,
    progress: Progress,
) -> None:
    async with our_stack(args, side, "idle", progress) as (endpoints, meter):
        edge_pid = pid_listening_on(port_of(endpoints.edge, 80))
        if edge_pid is None:
            raise StackError("cannot find the ws-edge process by its port")
        progress.say(f"ours: {options.sockets} idle sockets")
        await ours_idle(side, endpoints.edge_ws, edge_pid, meter, options, rng, progress)


async def ours_send_phase(
    side: Side,
    options: CompareOptions,
    args: argparse.Namespace,
    rng: random.Random,
    progress: Progress,
) -> None:
    async with our_stack(args, side, "send", progress) as (endpoints, meter):
        progress.say(f"ours: REST send -> socket at {options.rate:g}/s (the e2e scenario)")
        ctx = Context(
            endpoints,
            progress,
            rng,
            run_tag=uuid.uuid4().hex[:8],
            heartbeat_interval=APP_HEARTBEAT_SECONDS,
            settle_timeout=options.presence_settle_timeout,
            mongo_url=args.mongo_url,
            cpu=meter,
        )
        sent = await e2e.run(
            ctx,
            e2e.E2eOptions(
                users=options.users,
                rate=options.rate,
                duration=options.duration,
                warmup=options.warmup,
                drain_timeout=options.drain_timeout,
                duplicate_window=0.5,
            ),
        )
    figures = sent.figures
    for name in ("achieved_rate_per_s", "not_offered", "sent", "delivered", "lost", "duplicates"):
        side.figures[name] = figures.get(name)
    for name in ("latency", "rest"):
        for stat in ("count", "p50_ms", "p99_ms", "max_ms"):
            side.figures[f"{name}_{stat}"] = figures.get(f"{name}_{stat}")
    operations = figures.get("measured_operations")
    if isinstance(operations, int):
        side.figures.update(cpu_figures(meter, "send", operations))
    side.problems.extend(sent.problems)
    side.notes.extend(sent.notes)


async def run_ours(
    options: CompareOptions, args: argparse.Namespace, rng: random.Random, progress: Progress
) -> Side:
    side = Side("ours")
    await run_phase(
        side, "idle sockets", ours_idle_phase(side, options, args, rng, progress), args, progress
    )
    await run_phase(
        side, "sends", ours_send_phase(side, options, args, rng, progress), args, progress
    )
    return side


# --- Centrifugo -----------------------------------------------------------------------------


@dataclass
class Connected:
    sockets: list[CentrifugoSocket] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    async def close(self, concurrency: int = 200) -> None:
        limit = asyncio.Semaphore(concurrency)

        async def close_one(socket: CentrifugoSocket) -> None:
            async with limit:
                await socket.close()

        await asyncio.gather(*(close_one(s) for s in self.sockets))


async def connect_centrifugo(
    config: CentrifugoConfig,
    user_ids: Sequence[str],
    on_push: PushHandler,
    progress: Progress,
    *,
    concurrency: int,
) -> Connected:
    """Like population.bring_online: each socket counts once its connect reply came back
    with the personal channel among its server-side subscriptions."""
    done = Connected()
    started = time.monotonic()

    async def connect_one(index: int) -> None:
        socket = CentrifugoSocket(config, user_ids[index], on_push)
        attempt = time.monotonic()
        try:
            result = await socket.open(CONNECT_TIMEOUT)
            channel = config.personal_channel(socket.user_id)
            if channel not in result.get("subs", {}):
                raise RuntimeError(f"not subscribed to {channel}: {result}")
        except Exception as error:
            done.failures.append(f"{socket.user_id}: {type(error).__name__}: {error}")
            await socket.close()
            return
        done.latencies.append(time.monotonic() - attempt)
        done.sockets.append(socket)

    def status() -> str:
        return f"connecting: {len(done.sockets)}/{len(user_ids)}, {len(done.failures)} failed"

    async with progress.ticking(status):
        await paced(
            len(user_ids),
            connect_one,
            rate=None,
            max_in_flight=concurrency,
            settle_timeout=3 * CONNECT_TIMEOUT,
        )
    done.seconds = time.monotonic() - started
    progress.say(f"{len(done.sockets)} connected in {done.seconds:.1f}s")
    return done


async def centrifugo_idle(
    side: Side,
    config: CentrifugoConfig,
    pid: int,
    meter: CpuMeter,
    options: CompareOptions,
    rng: random.Random,
    progress: Progress,
) -> None:
    user_ids = fresh_user_ids(options.sockets, rng)
    before = rss_kib(pid)
    with meter.window():
        connected = await connect_centrifugo(
            config, user_ids, ignore_pushes, progress, concurrency=options.connect_concurrency
        )
    try:
        await asyncio.sleep(options.settle)
        after = rss_kib(pid)
        opened = len(connected.sockets)
        dropped = sum(s.close_code is not None for s in connected.sockets)
    finally:
        progress.say(f"closing {len(connected.sockets)} idle sockets")
        await connected.close()
    side.figures.update(
        {
            "sockets_open": opened,
            "server_rss_before_kib": before,
            "server_rss_after_kib": after,
            "rss_per_socket_kib": kib_per_socket(before, after, opened),
            "connect_seconds": round(connected.seconds, 2),
            "connect_rate_per_s": per_second(opened, connected.seconds),
            **latency_figures("connect", connected.latencies),
            **cpu_figures(meter, "connect", opened),
        }
    )
    if connected.failures:
        side.problems.append(
            f"{len(connected.failures)} connections failed, e.g. {connected.failures[0]}"
        )
    if dropped:
        side.problems.append(f"{dropped} idle sockets were closed by the server")


@dataclass
class Published:
    seq: int
    recipient: str
    phase: str
    sent_at: float = 0.0
    answered_at: float | None = None
    error: str | None = None
    delivered_at: float | None = None
    deliveries: int = 0


class PublishLoad:
    """Publishes to personal channels at a steady rate and matches the pushes that come
    back, as message_load.MessageLoad does for our REST sends."""

    def __init__(self, api: PublishApi, config: CentrifugoConfig, tag: str) -> None:
        self._api = api
        self._config = config
        self._tag = tag
        self.records: list[Published] = []
        self.unexpected: list[str] = []

    def on_push(self, socket: CentrifugoSocket, push: Push, at: float) -> None:
        data = push.get("pub", {}).get("data")
        if push.get("channel") != self._config.personal_channel(socket.user_id):
            self.unexpected.append(f"{socket.user_id}: push on {push.get('channel')}")
            return
        if not isinstance(data, dict) or data.get("tag") != self._tag:
            self.unexpected.append(f"{socket.user_id}: push we never sent: {push}")
            return
        seq = data.get("seq")
        if not isinstance(seq, int) or not 0 <= seq < len(self.records):
            self.unexpected.append(f"{socket.user_id}: push with seq {seq!r}")
            return
        record = self.records[seq]
        if record.recipient != socket.user_id:
            self.unexpected.append(f"{socket.user_id}: got {record.recipient}'s push {seq}")
            return
        record.deliveries += 1
        if record.deliveries == 1:
            record.delivered_at = at

    async def run(
        self, recipients: Sequence[str], phase: str, rate: float, seconds: float
    ) -> PacedRun:
        count = max(1, round(rate * seconds))
        first = len(self.records)
        for offset in range(count):
            seq = first + offset
            self.records.append(Published(seq, recipients[seq % len(recipients)], phase))

        async def send(index: int) -> None:
            record = self.records[first + index]
            record.sent_at = time.monotonic()
            try:
                await self._api.publish(
                    self._config.personal_channel(record.recipient),
                    {"tag": self._tag, "seq": record.seq, "content": f"{self._tag}:{record.seq}"},
                )
            except Exception as error:
                record.error = f"{type(error).__name__}: {error}"
                return
            record.answered_at = time.monotonic()

        return await paced(
            count,
            send,
            rate=rate,
            max_in_flight=self._api.max_connections,
            settle_timeout=PUBLISH_TIMEOUT + 5,
            overrun=max(1.0, 0.1 * seconds),
        )

    def undelivered(self) -> int:
        return sum(r.answered_at is not None and r.delivered_at is None for r in self.records)

    async def drain(self, idle_seconds: float) -> bool:
        """Wait until every accepted publish arrived; False once none arrived for
        `idle_seconds`."""
        last, quiet_since = self.undelivered(), time.monotonic()
        while last:
            await asyncio.sleep(0.05)
            now_waiting = self.undelivered()
            if now_waiting != last:
                last, quiet_since = now_waiting, time.monotonic()
            elif time.monotonic() - quiet_since > idle_seconds:
                return False
        return True


async def centrifugo_latency(
    side: Side,
    config: CentrifugoConfig,
    meter: CpuMeter,
    options: CompareOptions,
    rng: random.Random,
    progress: Progress,
) -> None:
    api = PublishApi(config)
    load = PublishLoad(api, config, uuid.uuid4().hex[:8])
    user_ids = fresh_user_ids(options.users, rng)
    connected = await connect_centrifugo(
        config, user_ids, load.on_push, progress, concurrency=CONNECT_CONCURRENCY
    )
    try:
        if connected.failures:
            raise RuntimeError(
                f"{len(connected.failures)} of {options.users} users could not connect, "
                f"e.g. {connected.failures[0]}"
            )
        if options.warmup > 0:
            progress.say(f"warmup: publishing {options.rate:g}/s for {options.warmup:g}s")
            await load.run(user_ids, "warmup", options.rate, options.warmup)
        progress.say(f"measure: publishing {options.rate:g}/s for {options.duration:g}s")
        with meter.window():
            measured = await load.run(user_ids, "measure", options.rate, options.duration)
            drained = await load.drain(options.drain_timeout)
        await asyncio.sleep(0.5)  # late duplicates
    finally:
        await connected.close()
        await api.close()
    in_window = [r for r in load.records if r.phase == "measure"]
    accepted = [r for r in load.records if r.answered_at is not None]
    lost = [r for r in accepted if r.delivered_at is None]
    failed = [r for r in load.records if r.sent_at > 0 and r.answered_at is None]
    duplicates = sum(max(0, r.deliveries - 1) for r in load.records)
    side.figures.update(
        {
            "achieved_rate_per_s": measured.achieved_rate,
            "not_offered": measured.skipped,
            "sent": len(accepted),
            "delivered": len(accepted) - len(lost),
            "lost": len(lost),
            "duplicates": duplicates,
            **_pick(
                latency_figures(
                    "latency",
                    (r.delivered_at - r.sent_at for r in in_window if r.delivered_at),
                )
            ),
            **_pick(
                latency_figures(
                    "rest", (r.answered_at - r.sent_at for r in in_window if r.answered_at)
                )
            ),
            **cpu_figures(meter, "send", len(in_window)),
        }
    )
    if not drained or lost:
        side.problems.append(f"{len(lost)} accepted publishes never reached their recipient")
    if failed:
        side.problems.append(f"{len(failed)} publishes failed, e.g. {failed[0].error}")
    if duplicates:
        side.problems.append(f"{duplicates} duplicate publications")
    if load.unexpected:
        side.problems.append(f"{len(load.unexpected)} unexpected pushes, e.g. {load.unexpected[0]}")


def _pick(figures: dict[str, float | int | None]) -> dict[str, Figure]:
    """The latency statistics the comparison keeps."""
    keep = ("_count", "_p50_ms", "_p99_ms", "_max_ms")
    return {k: v for k, v in figures.items() if k.endswith(keep)}


@contextlib.asynccontextmanager
async def centrifugo_server(
    path: Path, args: argparse.Namespace, side: Side, phase: str, progress: Progress
) -> AsyncIterator[tuple[CentrifugoConfig, CpuMeter]]:
    """A fresh server per phase, as ours gets a fresh stack."""
    config = CentrifugoConfig.generate(free_unreserved_port())
    server = OwnedCentrifugo(path, config, progress)
    try:
        await server.start(args.ready_timeout)
        side.processes[phase] = {"load generator": os.getpid(), "centrifugo": server.pid}
        yield config, CpuMeter(dict(side.processes[phase]))
        if server.process is not None and server.process.returncode is not None:
            side.problems.append(f"Centrifugo exited during {phase}: {server.log_tail()}")
    finally:
        await server.stop()


async def centrifugo_idle_phase(
    side: Side,
    options: CompareOptions,
    path: Path,
    args: argparse.Namespace,
    rng: random.Random,
    progress: Progress,
) -> None:
    async with centrifugo_server(path, args, side, "idle", progress) as (config, meter):
        progress.say(f"Centrifugo: {options.sockets} idle sockets")
        pid = side.processes["idle"]["centrifugo"]
        await centrifugo_idle(side, config, pid, meter, options, rng, progress)


async def centrifugo_send_phase(
    side: Side,
    options: CompareOptions,
    path: Path,
    args: argparse.Namespace,
    rng: random.Random,
    progress: Progress,
) -> None:
    async with centrifugo_server(path, args, side, "send", progress) as (config, meter):
        progress.say(f"Centrifugo: HTTP API publish -> socket at {options.rate:g}/s")
        await centrifugo_latency(side, config, meter, options, rng, progress)


async def run_centrifugo(
    options: CompareOptions,
    path: Path,
    args: argparse.Namespace,
    rng: random.Random,
    progress: Progress,
) -> Side:
    side = Side("centrifugo")
    await run_phase(
        side,
        "idle sockets",
        centrifugo_idle_phase(side, options, path, args, rng, progress),
        args,
        progress,
    )
    await run_phase(
        side,
        "sends",
        centrifugo_send_phase(side, options, path, args, rng, progress),
        args,
        progress,
    )
    return side


# --- the table ------------------------------------------------------------------------------


def ratio(ours: Figure, theirs: Figure) -> float | None:
    """ours / Centrifugo, or None when either is missing (or Centrifugo's is 0)."""
    if not _number(ours) or not _number(theirs) or theirs == 0:
        return None
    return round(float(ours) / float(theirs), 2)  # type: ignore[arg-type]


def _number(value: Figure) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def cell(value: Figure) -> str:
    if not _number(value):
        return DASH
    number = float(value)  # type: ignore[arg-type]
    if abs(number) >= 100:
        return f"{number:,.0f}"
    return f"{number:.1f}" if abs(number) >= 10 else f"{number:.2f}"


def ratio_cell(found: float | None) -> str:
    if found is None:
        return DASH
    return f"{found:,.0f}" if found >= 100 else f"{found:.2f}"


@dataclass(frozen=True)
class Row:
    label: str
    figure: str
    # Centrifugo has no such figure (a dash in its column and the ratio's).
    ours_only: bool = False


def rows_for(options: CompareOptions) -> list[Row]:
    return [
        Row(f"memory per idle socket, KiB ({options.sockets:,} held)", "rss_per_socket_kib"),
        Row("connects per second", "connect_rate_per_s"),
        Row("connect p99, ms", "connect_p99_ms"),
        # A latency means little without the rate it was reached at.
        Row(f"sends per second achieved (offered {options.rate:g})", "achieved_rate_per_s"),
        Row(f"send -> recipient socket p50, ms ({options.rate:g}/s)", "latency_p50_ms"),
        Row(f"send -> recipient socket p99, ms ({options.rate:g}/s)", "latency_p99_ms"),
        Row("send request answered p99, ms", "rest_p99_ms"),
        Row(
            f"heartbeat_ack p99 while {options.sockets:,} connect, ms",
            "heartbeat_ack_while_connecting_p99_ms",
            ours_only=True,
        ),
        Row("CPU ms per connect, server processes", "cpu_ms_per_connect_server"),
        Row("CPU ms per connect, load generator", "cpu_ms_per_connect_load_generator"),
        Row("CPU ms per send, server processes", "cpu_ms_per_send_server"),
        Row("CPU ms per send, load generator", "cpu_ms_per_send_load_generator"),
    ]


NOTES = (
    "connect: ours = WebSocket upgrade + heartbeat -> heartbeat_ack (admitted, deliveries "
    "bound); Centrifugo = WebSocket upgrade + connect command with a JWT -> its reply "
    "(two round trips each)",
    "send: ours = messaging REST send, persisted to MongoDB, routed over RabbitMQ; "
    "Centrifugo = HTTP API publish to the recipient's personal channel, memory only",
)


def comparison_table(
    rows: Sequence[Row], ours: Mapping[str, Figure], theirs: Mapping[str, Figure]
) -> str:
    cells = [("figure", "ours", "Centrifugo", "ours/Centrifugo")]
    for row in rows:
        theirs_value = None if row.ours_only else theirs.get(row.figure)
        found = ratio(ours.get(row.figure), theirs_value)
        cells.append(
            (
                row.label,
                cell(ours.get(row.figure)),
                cell(theirs_value),
                ratio_cell(found),
            )
        )
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = [
        "  ".join(
            (text.ljust(width) if i == 0 else text.rjust(width))
            for i, (text, width) in enumerate(zip(c, widths, strict=True))
        ).rstrip()
        for c in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def per_process_lines(sides: Sequence[Side]) -> list[str]:
    lines = []
    for operation in ("connect", "send"):
        prefix = f"cpu_ms_per_{operation}_"
        parts = []
        for side in sides:
            roles = [
                f"{key[len(prefix) :]} {cell(value)}"
                for key, value in side.figures.items()
                if key.startswith(prefix) and not key.endswith(("_server", "_total"))
            ]
            parts.append(f"{side.name}: {', '.join(roles) or DASH}")
        lines.append(f"CPU ms per {operation} by process: " + " | ".join(parts))
    return lines


def combined_result(
    options: CompareOptions, ours: Side, theirs: Side, rows: Sequence[Row]
) -> ScenarioResult:
    result = ScenarioResult("compare", asdict(options))
    for side in (ours, theirs):
        for key, value in side.figures.items():
            result.figures[f"{side.name}_{key}"] = value
        result.problems.extend(f"{side.name}: {p}" for p in side.problems)
        result.notes.extend(f"{side.name}: {n}" for n in side.notes)
        for phase, pids in side.processes.items():
            result.figures[f"{side.name}_{phase}_processes"] = ", ".join(
                f"{role}={pid}" for role, pid in sorted(pids.items())
            )
    for row in rows:
        if not row.ours_only:
            result.figures[f"ratio_{row.figure}"] = ratio(
                ours.figures.get(row.figure), theirs.figures.get(row.figure)
            )
    result.notes.extend(NOTES)
    return result


# --- command line -------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="chat-bench compare",
        description="This stack and Centrifugo v6.9.1 side by side (docs/performance.md).",
    )
    root.add_argument("--smoke", action="store_true", help="tiny sizes: a check, not a benchmark")
    sizes = root.add_argument_group("sizes (defaults: full run / --smoke)")
    for option in fields(CompareOptions):
        default = getattr(CompareOptions(), option.name)
        smoke = getattr(SMOKE, option.name)
        sizes.add_argument(
            "--" + option.name.replace("_", "-"),
            dest=option.name,
            type=type(default),
            default=None,
            metavar=type(default).__name__.upper(),
            help=f"(default {default:g} / {smoke:g})",
        )
    root.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", DEFAULT_AMQP_URL))
    root.add_argument("--mongo-url", default=os.environ.get("MONGO_URL", DEFAULT_MONGO_URL))
    root.add_argument("--ready-timeout", type=float, default=60.0)
    root.add_argument(
        "--no-build",
        action="store_true",
        help="fail instead of building Centrifugo when it is not cached",
    )
    root.add_argument("--results-dir", type=Path, default=None)
    root.add_argument("--progress-interval", type=float, default=2.0)
    root.add_argument("--random-seed", type=int, default=None)
    return root


def options_from(args: argparse.Namespace) -> CompareOptions:
    base = SMOKE if args.smoke else CompareOptions()
    given = {
        f.name: getattr(args, f.name)
        for f in fields(CompareOptions)
        if getattr(args, f.name) is not None
    }
    return replace(base, **given)


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    options = options_from(args)
    progress = Progress(interval=args.progress_interval)
    progress.scenario = "compare"
    limit = raise_open_file_limit()
    too_low = shortfall(limit, options.sockets + options.probes + 200)
    if too_low:
        progress.say(f"warning: {too_low}")
    try:
        path = binary(build=not args.no_build)
    except CentrifugoUnavailable as error:
        print(f"chat-bench compare: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    progress.say(f"Centrifugo binary: {path}")
    try:
        check_infrastructure(args.amqp_url, args.mongo_url)
    except StackError as error:
        print(f"chat-bench compare: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    rng = random.Random(args.random_seed)
    started = datetime.now(UTC)
    runs: dict[str, Callable[[], Coroutine[Any, Any, Side]]] = {
        "ours": lambda: run_ours(options, args, rng, progress),
        "centrifugo": lambda: run_centrifugo(options, path, args, rng, progress),
    }
    sides: list[Side] = []
    # One stack after the other, each in a fresh event loop: they never share the cores.
    for name, run in runs.items():
        try:
            sides.append(uvloop.run(run()))
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            sides.append(Side(name, problems=[f"failed: {type(error).__name__}: {error}"]))
    finished = datetime.now(UTC)
    ours, theirs = sides
    rows = rows_for(options)
    result = combined_result(options, ours, theirs, rows)
    run_name = "compare-smoke" if args.smoke else "compare"
    results_dir = args.results_dir or report.default_results_dir()
    out = results_dir / f"{report.utc_stamp(started)}-{run_name}.json"
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings.update(options=asdict(options), open_files=limit.to_json())
    settings["centrifugo_binary"] = str(path)
    document = report.summary(
        run=run_name,
        started=started,
        finished=finished,
        settings=settings,
        stack={s.name: {"pids": s.processes} for s in sides},
        results=[result],
        file=out,
    )
    report.write(document, out)
    print(comparison_table(rows, ours.figures, theirs.figures))
    print()
    for line in per_process_lines(sides):
        print(line)
    for note in NOTES:
        print(f"note: {note}")
    for problem in result.problems:
        print(f"PROBLEM: {problem}")
    print(f"results: {out}")
    print(report.json_line(document))
    sys.stdout.flush()
    if not document["correct"]:
        sys.exit(EXIT_INCORRECT)
