"""Latency figures from client-side samples: nearest-rank percentiles, in milliseconds."""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest rank: always a value that was observed, never an interpolation between two."""
    if not sorted_values:
        raise ValueError("no samples")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction out of range: {fraction}")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Summary:
    """Seconds in, milliseconds out (`as_ms`)."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    def as_ms(self, prefix: str) -> dict[str, float | int]:
        return {
            f"{prefix}_count": self.count,
            f"{prefix}_p50_ms": to_ms(self.p50),
            f"{prefix}_p95_ms": to_ms(self.p95),
            f"{prefix}_p99_ms": to_ms(self.p99),
            f"{prefix}_max_ms": to_ms(self.max),
            f"{prefix}_mean_ms": to_ms(self.mean),
        }


def summarize(samples: Iterable[float]) -> Summary | None:
    ordered = sorted(samples)
    if not ordered:
        return None
    return Summary(
        count=len(ordered),
        p50=percentile(ordered, 0.50),
        p95=percentile(ordered, 0.95),
        p99=percentile(ordered, 0.99),
        max=ordered[-1],
        mean=math.fsum(ordered) / len(ordered),
    )


def latency_figures(prefix: str, samples: Iterable[float]) -> dict[str, float | int | None]:
    """The summary's figures, or the same keys set to None when nothing was measured."""
    summary = summarize(samples)
    if summary is None:
        empty: dict[str, float | int | None] = {
            f"{prefix}_{name}": None for name in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms")
        }
        return {f"{prefix}_count": 0, **empty}
    return dict(summary.as_ms(prefix))


def to_ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def per_second(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0
