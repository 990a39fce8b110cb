"""Every scenario: its options (defaults, smoke sizes), what it needs from the stack, and how
many files it opens."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chat_bench.results import ScenarioResult
from chat_bench.scenarios import abuse, connect, cost, fanout, growth, typing_events
from chat_bench.scenarios.context import Context

OptionsT = TypeVar("OptionsT")

# Conversations are capped at 256 participants by default (messaging MAX_PARTICIPANTS).
DEFAULT_MAX_PARTICIPANTS = 256


@dataclass(frozen=True)
class Scenario(Generic[OptionsT]):
    name: str
    summary: str
    defaults: OptionsT
    smoke: OptionsT
    run: Callable[[Context, OptionsT], Awaitable[ScenarioResult]]
    # Settings a stack started by chat-bench needs for this scenario.
    stack_env: Callable[[OptionsT], dict[str, str]]
    # Sockets this process holds at most (files beyond stdio, logs and the like).
    sockets: Callable[[OptionsT], int]


# The abuse limits, raised for every scenario but `abuse` (which states the defaults it
# measures): 10,000 sockets from one address or a burst of sends from one user must not be
# measuring the limiter. A stack given with --edge-url etc. runs as it is configured.
RAISED_LIMITS = {
    "FRAME_RATE_PER_SECOND": "1000",
    "FRAME_BURST": "1000",
    "MAX_SOCKETS": "1000000",
    "ADMISSIONS_PER_SECOND_PER_ADDRESS": "100000",
    "MAX_DEVICES_PER_USER": "100",
    "SEND_RATE_PER_SECOND": "100000",
    "SEND_BURST": "100000",
    "CONVERSATION_RATE_PER_SECOND": "100000",
    "CONVERSATION_BURST": "100000",
}


def _raised_limits(_options: Any) -> dict[str, str]:
    return dict(RAISED_LIMITS)


def _fanout_env(options: fanout.FanoutOptions) -> dict[str, str]:
    needed = options.members + 1
    extra = {"MAX_PARTICIPANTS": str(needed)} if needed > DEFAULT_MAX_PARTICIPANTS else {}
    return {**RAISED_LIMITS, **extra}


SCENARIOS: tuple[Scenario[Any], ...] = (
    Scenario(
        "cost",
        "open-loop sends (REST or socket) in one-to-one conversations, in rate steps; "
        "latency, loss, duplicates and CPU ms per send for every process",
        cost.CostOptions(),
        cost.SMOKE,
        cost.run,
        _raised_limits,
        lambda o: o.users + 200,
    ),
    Scenario(
        "connect",
        "N sockets connect to one edge; connects/s, CPU per connect, RSS per idle socket, "
        "heartbeat_ack right after",
        connect.ConnectOptions(),
        connect.SMOKE,
        connect.run,
        _raised_limits,
        lambda o: o.connections + 100,
    ),
    Scenario(
        "typing",
        "typing events at a steady rate from distinct senders; WebSocket-to-WebSocket latency",
        typing_events.TypingOptions(),
        typing_events.SMOKE,
        typing_events.run,
        _raised_limits,
        lambda o: typing_events.ring_size(o) + 100,
    ),
    Scenario(
        "fanout",
        "one message to a conversation of M online members; time until the last has it",
        fanout.FanoutOptions(),
        fanout.SMOKE,
        fanout.run,
        _fanout_env,
        lambda o: o.members + 100,
    ),
    Scenario(
        "growth",
        "one user's reads and writes before and after N messages of other users are stored",
        growth.GrowthOptions(),
        growth.SMOKE,
        growth.run,
        _raised_limits,
        lambda _o: 100,
    ),
    Scenario(
        "abuse",
        "one socket floods while a bystander heartbeats; a stuck socket is sent MBs",
        abuse.AbuseOptions(),
        abuse.SMOKE,
        abuse.run,
        abuse.stack_env,
        lambda _o: 100,
    ),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
