"""The population of the e2e and ceiling scenarios: N users online, in N/2 one-to-one
conversations, and a MessageLoad listening on every socket."""

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from chat_bench.pacing import PacedRun
from chat_bench.population import ConversationSpec, Online, create_conversations
from chat_bench.rest import RestClient
from chat_bench.results import Figure
from chat_bench.scenarios.context import Context
from chat_bench.scenarios.crowd import crowd_figures, online_users, settle
from chat_bench.scenarios.message_load import MessageLoad, Pair, pair_up
from chat_bench.users import fresh_user_ids

CREATE_CONCURRENCY = 16


@dataclass
class OneToOne:
    online: Online
    load: MessageLoad
    settle_seconds: float | None

    def figures(self) -> dict[str, Figure]:
        return {
            "conversations": len(self.load.pairs),
            **crowd_figures(self.online, self.settle_seconds),
        }


@contextlib.asynccontextmanager
async def one_to_one_population(
    ctx: Context, rest: RestClient, users: int
) -> AsyncIterator[OneToOne]:
    user_ids = fresh_user_ids(users, ctx.rng)
    load = MessageLoad(rest, ctx.run_tag)
    pairs = pair_up(user_ids)
    # Conversations first, then the users come online, as when people open the app: each
    # first connection is announced to the contact it already has.
    ids = await create_conversations(
        rest,
        [ConversationSpec(first, (second,)) for first, second in pairs],
        ctx.progress,
        concurrency=CREATE_CONCURRENCY,
    )
    load.pairs = [Pair(a, b, c) for (a, b), c in zip(pairs, ids, strict=True)]
    async with online_users(ctx, user_ids, load.on_frame) as online:
        settle_seconds = await settle(ctx, user_ids)
        yield OneToOne(online, load, settle_seconds)


async def send_phase(
    ctx: Context, load: MessageLoad, phase: str, rate: float, seconds: float
) -> PacedRun:
    """Offer `rate` sends per second for `seconds`, with progress while it runs."""
    started = time.monotonic()
    first = load.launched
    ctx.progress.say(f"{phase}: offering {rate:g} sends/s for {seconds:g}s")

    def status() -> str:
        return (
            f"{phase} {time.monotonic() - started:4.1f}/{seconds:g}s: "
            f"sent {load.launched - first}, delivered {load.delivered_count()}, "
            f"awaiting {load.awaiting}"
        )

    async with ctx.progress.ticking(status):
        return await load.run(phase, rate, seconds)
