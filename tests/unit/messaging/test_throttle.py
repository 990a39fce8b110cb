from messaging.throttle import Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_event_passes_and_repeats_within_the_interval_do_not() -> None:
    clock = FakeClock()
    throttle = Throttle(1.0, clock)
    assert throttle.allow(("u", "c"))
    clock.now += 0.5
    assert not throttle.allow(("u", "c"))
    clock.now += 0.49
    assert not throttle.allow(("u", "c"))


def test_an_event_after_the_interval_passes_again() -> None:
    clock = FakeClock()
    throttle = Throttle(1.0, clock)
    assert throttle.allow("k")
    clock.now += 1.0
    assert throttle.allow("k")
    clock.now += 0.2
    assert not throttle.allow("k")


def test_suppressed_events_do_not_extend_the_window() -> None:
    clock = FakeClock()
    throttle = Throttle(1.0, clock)
    assert throttle.allow("k")
    for step in range(1, 10):
        clock.now = 100.0 + step / 10
        assert not throttle.allow("k")
    clock.now = 101.0
    assert throttle.allow("k")


def test_keys_are_independent() -> None:
    throttle = Throttle(1.0, FakeClock())
    assert throttle.allow(("alice", "c1"))
    assert throttle.allow(("alice", "c2"))
    assert throttle.allow(("bob", "c1"))
    assert not throttle.allow(("alice", "c1"))


def test_zero_interval_lets_everything_through() -> None:
    throttle = Throttle(0.0, FakeClock())
    assert all(throttle.allow("k") for _ in range(5))


def test_expired_keys_are_pruned_so_memory_stays_bounded() -> None:
    clock = FakeClock()
    throttle = Throttle(1.0, clock, prune_above=10)
    for n in range(10):
        throttle.allow(n)
    clock.now += 2.0
    throttle.allow("fresh")
    assert len(throttle) == 1


def test_live_keys_survive_pruning() -> None:
    clock = FakeClock()
    throttle = Throttle(1.0, clock, prune_above=3)
    for n in range(5):
        throttle.allow(n)
    assert len(throttle) == 5
    assert not throttle.allow(0)
