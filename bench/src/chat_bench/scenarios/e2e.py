"""e2e: N users online in N/2 one-to-one conversations, a steady offered rate of REST sends;
latency from the REST request to the recipient's WebSocket, delivered/sent, duplicates."""

import asyncio
from dataclasses import asdict, dataclass

from chat_bench.rest import RestClient
from chat_bench.results import ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.scenarios.crowd import record_setup_retries
from chat_bench.scenarios.one_to_one import one_to_one_population, send_phase
from chat_bench.stats import latency_figures, summarize, to_ms


@dataclass(frozen=True)
class E2eOptions:
    users: int = 1000
    rate: float = 200.0
    duration: float = 30.0
    warmup: float = 5.0
    # After the sends: give up once no delivery has arrived for this long.
    drain_timeout: float = 10.0
    # After the last delivery: how long a late duplicate still gets to show up.
    duplicate_window: float = 1.0


SMOKE = E2eOptions(
    users=20, rate=20, duration=1.5, warmup=0.5, drain_timeout=5, duplicate_window=0.5
)


async def run(ctx: Context, options: E2eOptions) -> ScenarioResult:
    result = ScenarioResult("e2e", asdict(options))
    rest = RestClient(ctx.endpoints.messaging, max_connections=64)
    try:
        async with one_to_one_population(ctx, rest, options.users) as population:
            load = population.load
            if options.warmup > 0:
                await send_phase(ctx, load, "warmup", options.rate, options.warmup)
            with ctx.cpu.window():
                measured = await send_phase(ctx, load, "measure", options.rate, options.duration)
                drained = await load.drain(options.drain_timeout)
            ctx.progress.say(
                f"{'all delivered' if drained else 'drain timed out'}; "
                f"watching {options.duplicate_window:g}s for duplicates"
            )
            await asyncio.sleep(options.duplicate_window)
    finally:
        await rest.close()

    counts, problems = load.correctness()
    in_window = load.of_phase("measure")
    lag = summarize(measured.lags)
    result.figures.update(
        {
            "users": options.users,
            **population.figures(),
            "offered_rate_per_s": options.rate,
            "achieved_rate_per_s": measured.achieved_rate,
            "not_offered": measured.skipped,
            "send_lag_p99_ms": to_ms(lag.p99) if lag else None,
            # The sends of the measured window: CPU per operation divides by these.
            "measured_operations": len(in_window),
            **counts,
            "delivered_of_sent": f"{counts['delivered']}/{counts['sent']}",
            **latency_figures("latency", (r.latency for r in in_window if r.latency is not None)),
            **latency_figures(
                "rest", (r.answered_at - r.sent_at for r in in_window if r.answered_at)
            ),
        }
    )
    result.problems.extend(problems)
    record_setup_retries(result, rest)
    if load.other_frames:
        result.notes.append(f"other frames received: {load.other_frames}")
    return result
