"""Token buckets: per socket (frames), per user (REST) and per client address (admissions).

Hand-written on purpose. `limits` keeps windows (a moving window stores one timestamp per hit,
so 40 per 2 s costs 40 floats per key) and has no token bucket with a burst; `aiolimiter`
makes callers wait instead of refusing them and holds a waiter map per instance. A socket's
bucket here is two floats, which matters at tens of thousands of idle sockets per edge.
"""

import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Rate:
    """`per_second` sustained, bursts of up to `burst`; shared by every bucket it governs."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1, got {self}")

    def bucket(self, now: float) -> "TokenBucket":
        return TokenBucket(self.burst, now)


class TokenBucket:
    """Tokens refill at the rate's pace up to its burst; each event takes one.

    The rate is passed in rather than kept, so a bucket is only its two floats.
    """

    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp

    def refill(self, rate: Rate, now: float) -> float:
        if now > self.stamp:
            self.tokens = min(rate.burst, self.tokens + (now - self.stamp) * rate.per_second)
            self.stamp = now
        return self.tokens

    def take(self, rate: Rate, now: float) -> bool:
        if self.refill(rate, now) >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_seconds(self, rate: Rate) -> float:
        """How long until one token is back (as of the last refill)."""
        return max(0.0, (1.0 - self.tokens) / rate.per_second)

    def is_full(self, rate: Rate, now: float) -> bool:
        return self.refill(rate, now) >= rate.burst


class KeyedLimiter:
    """One bucket per key (a user, an address), in memory, with idle keys pruned.

    A key whose bucket has refilled completely decides nothing any more, so dropping it is
    exact; the map is scanned only when it has doubled since the last scan.
    """

    def __init__(self, rate: Rate, clock: Clock = time.monotonic, prune_above: int = 10_000):
        self.rate = rate
        self._clock = clock
        self._prune_floor = prune_above
        self._prune_above = prune_above
        self._buckets: dict[Hashable, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: Hashable) -> float | None:
        """None when allowed; otherwise the seconds until the key may try again."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._prune_above:
                self._prune(now)
            bucket = self._buckets[key] = self.rate.bucket(now)
        if bucket.take(self.rate, now):
            return None
        return bucket.wait_seconds(self.rate)

    def _prune(self, now: float) -> None:
        self._buckets = {k: b for k, b in self._buckets.items() if not b.is_full(self.rate, now)}
        self._prune_above = max(self._prune_floor, 2 * len(self._buckets))


def retry_after_header(seconds: float) -> str:
    """`Retry-After` takes whole seconds; round up so a client that obeys it gets in."""
    return str(max(1, math.ceil(seconds)))
