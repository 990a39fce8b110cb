"""overload: the e2e load offered far beyond what the stack sustains (default 1,000 sends/s,
about 5x). A stack that sheds what it cannot serve in time keeps its goodput near capacity
and its accepted sends fast; one that queues everything answers everything late. Refusals
(503 + Retry-After) are the point here, not a problem; losing an accepted send still is."""

import asyncio
from dataclasses import asdict, dataclass

from chat_bench.rest import RestClient
from chat_bench.results import ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.scenarios.crowd import record_setup_retries
from chat_bench.scenarios.one_to_one import one_to_one_population, send_phase
from chat_bench.stats import latency_figures, per_second


@dataclass(frozen=True)
class OverloadOptions:
    users: int = 400
    rate: float = 1000.0
    duration: float = 20.0
    drain_timeout: float = 15.0
    duplicate_window: float = 1.0


SMOKE = OverloadOptions(users=20, rate=60, duration=1.5, drain_timeout=5, duplicate_window=0.5)


async def run(ctx: Context, options: OverloadOptions) -> ScenarioResult:
    result = ScenarioResult("overload", asdict(options))
    rest = RestClient(ctx.endpoints.messaging, max_connections=256)
    try:
        async with one_to_one_population(ctx, rest, options.users) as population:
            load = population.load
            with ctx.cpu.window():
                measured = await send_phase(ctx, load, "measure", options.rate, options.duration)
                drained = await load.drain(options.drain_timeout)
            ctx.progress.say(f"{'all delivered' if drained else 'drain timed out'}")
            await asyncio.sleep(options.duplicate_window)
    finally:
        await rest.close()
    counts, problems = load.correctness(refusals_are_problems=False)
    in_window = load.of_phase("measure")
    accepted = [r for r in in_window if r.accepted]
    shed = [r for r in in_window if r.status == 503]
    result.figures.update(
        {
            "users": options.users,
            **population.figures(),
            "offered_rate_per_s": options.rate,
            "achieved_offer_per_s": measured.achieved_rate,
            "goodput_per_s": per_second(len(accepted), options.duration),
            "shed_503": len(shed),
            "other_refusals": sum(
                1 for r in in_window if r.status is not None and r.status not in (201, 503)
            ),
            "measured_operations": len(accepted),
            **counts,
            **latency_figures(
                "accepted_rest", (r.answered_at - r.sent_at for r in accepted if r.answered_at)
            ),
            **latency_figures(
                "accepted_delivery", (r.latency for r in accepted if r.latency is not None)
            ),
        }
    )
    result.problems.extend(problems)
    record_setup_retries(result, rest)
    return result
