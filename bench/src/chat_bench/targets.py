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


_E2E_SIZE = _at_least(users=1000, rate=200)
_TYPING_SIZE = _at_least(rate=1000)
_CONNECTIONS_SIZE = _at_least(connections=10_000)
_FANOUT_SIZE = _at_least(members=1000)

TARGETS: tuple[Target, ...] = (
    Target("e2e", "latency_p50_ms", "at most", 10, _E2E_SIZE),
    Target("e2e", "latency_p99_ms", "at most", 40, _E2E_SIZE),
    Target("e2e", "lost", "at most", 0, _E2E_SIZE),
    Target("e2e", "duplicates", "at most", 0, _E2E_SIZE),
    Target("typing", "latency_p99_ms", "at most", 20, _TYPING_SIZE),
    Target("connections", "connections_open", "at least", 10_000, _CONNECTIONS_SIZE),
    Target("connections", "rss_per_connection_kib", "at most", 20, _CONNECTIONS_SIZE),
    Target("connections", "heartbeat_ack_p99_ms", "at most", 50, _CONNECTIONS_SIZE),
    Target("connections", "connect_rate_per_s", "at least", 500, _CONNECTIONS_SIZE),
    Target("fanout", "last_delivery_max_ms", "at most", 250, _FANOUT_SIZE),
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
