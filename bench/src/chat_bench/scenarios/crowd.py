"""Users online for the length of a scenario: connected, settled, kept alive, then closed."""

import contextlib
from collections.abc import AsyncIterator, Sequence

from chat_bench.population import Online, bring_online, presence_caught_up, require_everyone
from chat_bench.rest import RestClient
from chat_bench.results import Figure, ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.sockets import FrameHandler
from chat_bench.stats import latency_figures

CONNECT_CONCURRENCY = 100


@contextlib.asynccontextmanager
async def online_users(
    ctx: Context, user_ids: Sequence[str], on_frame: FrameHandler
) -> AsyncIterator[Online]:
    online = await bring_online(
        ctx.endpoints.edge_ws,
        user_ids,
        on_frame,
        ctx.progress,
        concurrency=CONNECT_CONCURRENCY,
    )
    try:
        require_everyone(online, len(user_ids))
        # Apps heartbeat from the moment they connect; presence expires users who do not.
        online.keep_alive(ctx.heartbeat_interval)
        yield online
    finally:
        await online.close()


async def settle(ctx: Context, user_ids: Sequence[str]) -> float | None:
    """Wait for presence to work off the connection storm; how long it took (None: it had
    not caught up by the deadline)."""
    return await presence_caught_up(
        ctx.endpoints.presence,
        user_ids[-ctx.settle_sample :],
        ctx.progress,
        within=ctx.settle_timeout,
    )


def crowd_figures(online: Online, settle_seconds: float | None) -> dict[str, Figure]:
    return {
        "connect_seconds": round(online.seconds, 2),
        "presence_settle_seconds": None if settle_seconds is None else round(settle_seconds, 2),
        **latency_figures("background_heartbeat_ack", online.heartbeat_round_trips),
        "background_heartbeat_failures": online.heartbeat_failures,
    }


def record_setup_retries(result: ScenarioResult, rest: RestClient) -> None:
    """Setup calls the stack failed and a retry fixed: not measured, but not hidden either."""
    result.figures["setup_retries"] = len(rest.setup_retries)
    if rest.setup_retries:
        result.notes.append(
            f"{len(rest.setup_retries)} setup requests were retried, e.g. {rest.setup_retries[0]}"
        )
