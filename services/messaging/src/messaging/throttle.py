"""At most one event per key per interval, in memory (typing indicators)."""

import time
from collections.abc import Callable, Hashable


class Throttle:
    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        prune_above: int = 10_000,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._prune_floor = prune_above
        self._prune_above = prune_above
        self._last: dict[Hashable, float] = {}

    def allow(self, key: Hashable) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._last[key] = now
        if len(self._last) > self._prune_above:
            self._prune(now)
        return True

    def __len__(self) -> int:
        return len(self._last)

    def _prune(self, now: float) -> None:
        # Entries past their interval decide nothing any more; dropping them bounds memory.
        self._last = {k: t for k, t in self._last.items() if now - t < self._interval}
        # With that many keys still live, wait for the map to double before scanning again.
        self._prune_above = max(self._prune_floor, 2 * len(self._last))
