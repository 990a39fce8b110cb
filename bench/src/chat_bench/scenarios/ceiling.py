"""ceiling: the e2e load, stepped up until p99 exceeds the limit or deliveries fall behind;
the highest offered rate the stack sustained.

A step passes when the generator really offered its rate, every send was accepted, every
accepted message reached its recipient within the grace period after the step, and the p99
(undelivered messages counting as infinitely late) is within the limit. The steps stop at
the first failure; everything still in flight is then drained, and anything accepted but
never delivered is a correctness problem whatever the load.
"""

import asyncio
import math
from dataclasses import asdict, dataclass

from chat_bench.rest import RestClient
from chat_bench.results import Figure, ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.scenarios.crowd import record_setup_retries
from chat_bench.scenarios.message_load import MessageLoad
from chat_bench.scenarios.one_to_one import one_to_one_population, send_phase
from chat_bench.stats import percentile, to_ms

# Below this share of the offered rate the generator (or the stack's backpressure) did not
# really offer the step.
MIN_ACHIEVED_SHARE = 0.95


@dataclass(frozen=True)
class CeilingOptions:
    users: int = 1000
    start_rate: float = 100.0
    step_rate: float = 100.0
    max_rate: float = 3000.0
    # When the start rate already fails, rates are halved down to this.
    min_rate: float = 5.0
    step_duration: float = 10.0
    warmup: float = 5.0
    p99_limit_ms: float = 100.0
    # After a step: how long its last messages may take to arrive before it counts as behind.
    step_grace: float = 2.0
    # After the sends: give up once no delivery has arrived for this long.
    drain_timeout: float = 30.0
    duplicate_window: float = 1.0


SMOKE = CeilingOptions(
    users=20,
    start_rate=20,
    step_rate=20,
    max_rate=40,
    step_duration=1.5,
    warmup=0.5,
    p99_limit_ms=1000,
    step_grace=2,
    drain_timeout=10,
    duplicate_window=0.5,
)


def step_rates(options: CeilingOptions) -> list[float]:
    if options.start_rate <= 0 or options.step_rate <= 0:
        raise ValueError("start and step rates must be positive")
    count = math.floor((options.max_rate - options.start_rate) / options.step_rate) + 1
    return [options.start_rate + i * options.step_rate for i in range(max(count, 1))]


def judge_step(
    load: MessageLoad, phase: str, rate: float, achieved: float, p99_limit_ms: float
) -> dict[str, Figure]:
    """One step's row. Every message sent in the step counts, however its request ended:
    what matters is whether the recipient had it; one still missing is infinitely late."""
    launched = load.of_phase(phase)
    latencies = sorted(r.latency if r.latency is not None else math.inf for r in launched)
    p50 = percentile(latencies, 0.5) if latencies else math.inf
    p99 = percentile(latencies, 0.99) if latencies else math.inf
    behind = sum(r.latency is None for r in launched)
    failed = sum(not r.accepted for r in launched)
    reasons = []
    if achieved < MIN_ACHIEVED_SHARE * rate:
        reasons.append(f"offered only {achieved:g}/s")
    if failed:
        reasons.append(f"{failed} sends refused or timed out")
    if behind:
        reasons.append(f"{behind} deliveries behind")
    if p99 * 1000 > p99_limit_ms:
        reasons.append(f"p99 over {p99_limit_ms:g} ms")
    return {
        "offered_rate_per_s": rate,
        "achieved_rate_per_s": achieved,
        "sent": len(launched),
        "failed": failed,
        "behind": behind,
        "latency_p50_ms": to_ms(p50) if math.isfinite(p50) else None,
        "latency_p99_ms": to_ms(p99) if math.isfinite(p99) else None,
        "passed": not reasons,
        "why": "; ".join(reasons) or "ok",
    }


async def run_step(
    ctx: Context, load: MessageLoad, rate: float, options: CeilingOptions
) -> dict[str, Figure]:
    phase = f"step-{rate:g}"
    paced_run = await send_phase(ctx, load, phase, rate, options.step_duration)
    await load.drain(options.step_grace, options.step_grace)
    row = judge_step(load, phase, rate, paced_run.achieved_rate, options.p99_limit_ms)
    ctx.progress.say(
        f"{rate:g}/s: p50 {row['latency_p50_ms']} ms, p99 {row['latency_p99_ms']} ms, {row['why']}"
    )
    return row


async def find_ceiling(
    ctx: Context, load: MessageLoad, options: CeilingOptions, rows: list[dict[str, Figure]]
) -> float | None:
    """Step up from the start rate until a step fails. If the very first one fails, halve
    the rate (after letting the backlog drain) until one passes, so there is always a figure
    unless even --min-rate is too much."""
    highest: float | None = None
    for rate in step_rates(options):
        row = await run_step(ctx, load, rate, options)
        rows.append(row)
        if not row["passed"]:
            break
        highest = rate
    if highest is not None:
        return highest
    rate = options.start_rate / 2
    while rate >= options.min_rate:
        ctx.progress.say(f"the first step failed: draining, then trying {rate:g}/s")
        await load.drain(options.drain_timeout)
        row = await run_step(ctx, load, rate, options)
        rows.append(row)
        if row["passed"]:
            return rate
        rate /= 2
    return None


async def run(ctx: Context, options: CeilingOptions) -> ScenarioResult:
    result = ScenarioResult("ceiling", asdict(options))
    rest = RestClient(ctx.endpoints.messaging, max_connections=128)
    try:
        async with one_to_one_population(ctx, rest, options.users) as population:
            load = population.load
            if options.warmup > 0:
                await send_phase(ctx, load, "warmup", options.start_rate, options.warmup)
                await load.drain(options.step_grace, options.step_grace)
            highest = await find_ceiling(ctx, load, options, result.rows)
            ctx.progress.say("draining what is still in flight")
            await load.drain(options.drain_timeout)
            await asyncio.sleep(options.duplicate_window)
    finally:
        await rest.close()

    counts, problems = load.correctness(refusals_are_problems=False)
    failures = [row for row in result.rows if not row["passed"] and _rate(row) > (highest or 0.0)]
    first_failure = min(failures, key=_rate) if failures else None
    result.figures.update(
        {
            "users": options.users,
            **population.figures(),
            "highest_sustained_rate_per_s": highest,
            "lowest_failing_rate_per_s": _rate(first_failure) if first_failure else None,
            "first_failure": str(first_failure["why"]) if first_failure else None,
            "steps": len(result.rows),
            **counts,
        }
    )
    if first_failure is None and result.rows:
        result.notes.append(f"every step up to --max-rate {options.max_rate:g} passed")
    if highest is None:
        result.notes.append(f"not even --min-rate {options.min_rate:g}/s was sustained")
    result.problems.extend(problems)
    record_setup_retries(result, rest)
    return result


def _rate(row: dict[str, Figure]) -> float:
    rate = row["offered_rate_per_s"]
    assert isinstance(rate, int | float)
    return float(rate)
