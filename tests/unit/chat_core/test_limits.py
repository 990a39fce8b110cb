"""Token buckets, the per-socket frame gate, client addresses and origins: pure logic."""

import pytest

from chat_core.client_address import ClientAddresses
from chat_core.limits import KeyedLimiter, Rate, TokenBucket, retry_after_header
from chat_core.origins import OriginPolicy
from ws_edge.flow import FrameGate, FramePolicy, Verdict

RATE = Rate(per_second=20, burst=40)
POLICY = FramePolicy(rate=RATE, invalid=Rate(10, 100), abuse_after_seconds=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = RATE.bucket(0.0)
    assert sum(bucket.take(RATE, 0.0) for _ in range(100)) == 40
    # Half a second refills ten tokens, never more than the burst.
    assert sum(bucket.take(RATE, 0.5) for _ in range(100)) == 10
    assert sum(bucket.take(RATE, 1000.0) for _ in range(100)) == 40


def test_a_bucket_says_how_long_until_the_next_token() -> None:
    bucket = TokenBucket(0.0, 0.0)
    assert bucket.wait_seconds(RATE) == pytest.approx(0.05)
    assert retry_after_header(0.05) == "1"
    assert retry_after_header(2.2) == "3"


def test_a_rate_needs_a_positive_pace_and_a_burst() -> None:
    with pytest.raises(ValueError, match="rate"):
        Rate(0, 10)
    with pytest.raises(ValueError, match="rate"):
        Rate(1, 0)


def test_keyed_limits_are_per_key_and_report_the_wait() -> None:
    clock = Clock()
    limiter = KeyedLimiter(Rate(2, 2), clock)
    assert limiter.acquire("alice") is None
    assert limiter.acquire("alice") is None
    wait = limiter.acquire("alice")
    assert wait == pytest.approx(0.5)
    assert limiter.acquire("bob") is None
    clock.now += 0.5
    assert limiter.acquire("alice") is None


def test_idle_keys_are_pruned_but_limited_ones_are_kept() -> None:
    clock = Clock()
    limiter = KeyedLimiter(Rate(1, 1), clock, prune_above=10)
    assert limiter.acquire("busy") is None
    for n in range(9):
        limiter.acquire(n)
    clock.now += 5  # every bucket but the next one's is full again
    assert limiter.acquire("busy") is None
    limiter.acquire("new")
    assert len(limiter) <= 3
    # "busy" is still empty, so it was kept and is still limited.
    assert limiter.acquire("busy") is not None


def test_a_burst_is_dropped_with_one_warning_per_second() -> None:
    gate = FrameGate(POLICY, 0.0)
    verdicts = [gate.admit(POLICY, 0.0) for _ in range(60)]
    assert verdicts.count(Verdict.PASS) == 40
    assert verdicts.count(Verdict.WARN) == 1
    assert verdicts.count(Verdict.DROP) == 19
    # A second later the client may be told again.
    later = [gate.admit(POLICY, 1.0) for _ in range(30)]
    assert later.count(Verdict.PASS) == 20
    assert later.count(Verdict.WARN) == 1


def test_staying_over_the_rate_closes_after_the_abuse_delay() -> None:
    gate = FrameGate(POLICY, 0.0)
    now, verdict = 0.0, Verdict.PASS
    # 40 frames a second: twice the rate, so every second has drops.
    while verdict is not Verdict.CLOSE and now < 10:
        verdict = gate.admit(POLICY, now)
        now += 0.025
    assert verdict is Verdict.CLOSE
    # The burst of 40 lasts 2 s at this pace; then 5 s over the limit.
    assert 6.9 <= now <= 7.2


def test_bursts_with_quiet_seconds_between_them_are_never_closed() -> None:
    gate = FrameGate(POLICY, 0.0)
    for second in range(0, 30, 2):
        verdicts = [gate.admit(POLICY, float(second)) for _ in range(60)]
        assert Verdict.CLOSE not in verdicts


def test_more_invalid_frames_than_allowed_in_the_window_close() -> None:
    gate = FrameGate(POLICY, 0.0)
    assert not any(gate.invalid_frame(POLICY, 0.0) for _ in range(100))
    assert gate.invalid_frame(POLICY, 0.05)
    # Spread out, the same number is fine.
    calm = FrameGate(POLICY, 0.0)
    assert not any(calm.invalid_frame(POLICY, n * 0.2) for n in range(500))


def scope(peer: str, forwarded: str | None = None) -> dict[str, object]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"type": "websocket", "client": (peer, 5000), "headers": headers}


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    addresses = ClientAddresses(["10.0.0.0/8"])
    assert addresses.resolve(scope("203.0.113.9", "198.51.100.1")) == "203.0.113.9"
    assert addresses.resolve(scope("10.1.2.3", "198.51.100.1")) == "198.51.100.1"
    # A client can write anything on the left; the last untrusted hop is who reached us.
    assert addresses.resolve(scope("10.1.2.3", "1.2.3.4, 198.51.100.1, 10.9.9.9")) == (
        "198.51.100.1"
    )
    assert addresses.resolve(scope("10.1.2.3")) == "10.1.2.3"
    assert addresses.resolve({"type": "websocket", "headers": []}) is None


def test_exempt_addresses() -> None:
    addresses = ClientAddresses([], ["127.0.0.0/8", "::1"])
    assert addresses.is_exempt("127.0.0.1")
    assert addresses.is_exempt("::1")
    assert not addresses.is_exempt("198.51.100.1")
    assert not addresses.is_exempt("not an address")


def test_origins() -> None:
    policy = OriginPolicy(["https://chat.example"])
    assert policy.allows(None)
    assert policy.allows("https://chat.example")
    assert policy.allows("HTTPS://Chat.Example/")
    assert not policy.allows("https://evil.example")
    assert not policy.allows("null")
    assert OriginPolicy(["*"]).allows("https://anything.example")
    assert not OriginPolicy([]).allows("https://chat.example")
