"""Every scenario: its options (defaults, smoke sizes), what it needs from the stack, and how
many files it opens."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chat_bench.results import ScenarioResult
from chat_bench.scenarios import (
    abuse,
    ceiling,
    connections,
    e2e,
    fanout,
    growth,
    overload,
    typing_events,
)
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
    # The figure that counts this scenario's operations, for CPU ms per operation.
    operations: str = "sent"


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
        "e2e",
        "REST sends at a steady rate to one-to-one conversations; REST-to-WebSocket latency",
        e2e.E2eOptions(),
        e2e.SMOKE,
        e2e.run,
        _raised_limits,
        lambda o: o.users + 200,
        "measured_operations",
    ),
    Scenario(
        "typing",
        "typing events at a steady rate over WebSocket; WebSocket-to-WebSocket latency",
        typing_events.TypingOptions(),
        typing_events.SMOKE,
        typing_events.run,
        _raised_limits,
        lambda o: typing_events.ring_size(o) + 100,
        "measured_operations",
    ),
    Scenario(
        "fanout",
        "one message to a conversation of M online members; time until the last has it",
        fanout.FanoutOptions(),
        fanout.SMOKE,
        fanout.run,
        _fanout_env,
        lambda o: o.members + 100,
        "expected",
    ),
    Scenario(
        "connections",
        "C idle authenticated connections on one edge with heartbeats; RSS, connect rate",
        connections.ConnectionsOptions(),
        connections.SMOKE,
        connections.run,
        _raised_limits,
        lambda o: o.connections + 100,
        "connections_open",
    ),
    Scenario(
        "ceiling",
        "the e2e load stepped up until p99 > limit or deliveries fall behind",
        ceiling.CeilingOptions(),
        ceiling.SMOKE,
        ceiling.run,
        _raised_limits,
        lambda o: o.users + 600,
    ),
    Scenario(
        "overload",
        "the e2e load at ~5x capacity: goodput, shed 503s and the p99 of accepted sends",
        overload.OverloadOptions(),
        overload.SMOKE,
        overload.run,
        _raised_limits,
        lambda o: o.users + 600,
        "measured_operations",
    ),
    Scenario(
        "growth",
        "one user's reads and writes before and after N messages of other users are stored",
        growth.GrowthOptions(),
        growth.SMOKE,
        growth.run,
        _raised_limits,
        lambda _o: 100,
        "",
    ),
    Scenario(
        "abuse",
        "one socket floods while a bystander heartbeats; a stuck socket is sent MBs",
        abuse.AbuseOptions(),
        abuse.SMOKE,
        abuse.run,
        abuse.stack_env,
        lambda _o: 100,
        "",
    ),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
