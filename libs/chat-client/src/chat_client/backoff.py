"""Reconnect delays: exponential with full jitter, so a restarted edge is not stormed."""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    # 1013 (edge full) and 1008 (abuse) ask for a longer wait than a dropped network.
    slow_start: float = 5.0

    def delay(self, attempt: int, *, slow: bool = False) -> float:
        """Seconds to wait before reconnect number `attempt` (0 for the first)."""
        base = self.slow_start if slow else self.initial
        ceiling = min(self.maximum, base * self.factor**attempt)
        # Full jitter, but never less than half the ceiling: fast enough, still spread out.
        return random.uniform(ceiling / 2, ceiling)
