"""The issue's targets for this machine, and whether a run met them.

A target only applies to a run at (at least) the size it was set for: a smoke run with
20 users says nothing about 1,000.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from chat_bench.results import ScenarioResult


@dataclass(frozen=True)
class Target:
    scenario: str
    figure: str
    bound: Literal["at most", "at least"]
    limit: float
    applies: Callable[[dict[str, Any]], bool]

    def label(self) -> str:
        sign = "<=" if self.bound == "at most" else ">="
        return f"{sign} {self.limit:g}"


def _at_least(**sizes: float) -> Callable[[dict[str, Any]], bool]:
    return lambda settings: all(settings.get(key, 0) >= size for key, size in sizes.items())


# Issue 19's targets (this machine, everything co-located).
_COST_SIZE = _at_least(users=1000)
_TYPING_SIZE = _at_least(rate=1000)
_CONNECT_SIZE = _at_least(connections=5000)
_FANOUT_SIZE = _at_least(members=1000)

TARGETS: tuple[Target, ...] = (
    Target("cost", "rest_100_cpu_ms_per_op_servers", "at most", 3, _COST_SIZE),
    Target("cost", "socket_100_cpu_ms_per_op_servers", "at most", 2.5, _COST_SIZE),
    Target("cost", "rest_200_latency_p50_ms", "at most", 3, _COST_SIZE),
    Target("cost", "rest_200_latency_p99_ms", "at most", 10, _COST_SIZE),
    Target("cost", "highest_rate_held_rest", "at least", 400, _COST_SIZE),
    Target("cost", "lost", "at most", 0, _COST_SIZE),
    Target("cost", "duplicates", "at most", 0, _COST_SIZE),
    Target("typing", "latency_p99_ms", "at most", 20, _TYPING_SIZE),
    Target("typing", "distinct_senders", "at least", 1000, _TYPING_SIZE),
    Target("connect", "connect_rate_per_s", "at least", 500, _CONNECT_SIZE),
    Target("connect", "edge_rss_per_socket_kib", "at most", 16, _CONNECT_SIZE),
    Target("connect", "heartbeat_ack_p99_ms", "at most", 20, _CONNECT_SIZE),
    Target("fanout", "last_delivery_max_ms", "at most", 100, _FANOUT_SIZE),
)


@dataclass(frozen=True)
class Verdict:
    target: Target
    value: float | None
    met: bool | None  # None: the figure is missing

    def to_json(self) -> dict[str, Any]:
        return {
            "figure": self.target.figure,
            "target": self.target.label(),
            "value": self.value,
            "met": self.met,
        }


def judge(result: ScenarioResult) -> list[Verdict]:
    verdicts = []
    for target in TARGETS:
        if target.scenario != result.scenario or not target.applies(result.settings):
            continue
        raw = result.figures.get(target.figure)
        if not isinstance(raw, int | float) or isinstance(raw, bool):
            verdicts.append(Verdict(target, None, None))
            continue
        value = float(raw)
        met = value <= target.limit if target.bound == "at most" else value >= target.limit
        verdicts.append(Verdict(target, value, met))
    return verdicts
