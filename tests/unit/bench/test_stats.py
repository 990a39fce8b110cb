"""chat-bench's pure logic: percentiles, pacing, user ids, target verdicts, loopback checks."""

import asyncio
import random
import time

import pytest

from chat_bench.limits import OpenFileLimit, shortfall
from chat_bench.pacing import paced, schedule_offset
from chat_bench.results import ScenarioResult
from chat_bench.scenarios.ceiling import CeilingOptions, step_rates
from chat_bench.scenarios.message_load import pair_up
from chat_bench.scenarios.typing_events import TypingOptions, ring_size
from chat_bench.stack import is_loopback
from chat_bench.stats import latency_figures, per_second, percentile, summarize
from chat_bench.targets import judge
from chat_bench.users import fresh_user_ids
from chat_core.ids import is_vn_mobile


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile(values, 0.0) == 1.0


def test_percentile_of_few_samples_is_an_observed_value() -> None:
    assert percentile([0.010, 0.020, 0.500], 0.99) == 0.500
    assert percentile([0.010, 0.020, 0.500], 0.50) == 0.020
    assert percentile([0.007], 0.5) == 0.007


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_percentile_rejects_fractions_out_of_range(fraction: float) -> None:
    with pytest.raises(ValueError, match="out of range"):
        percentile([1.0], fraction)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)


def test_summary_sorts_and_reports_milliseconds() -> None:
    summary = summarize([0.003, 0.001, 0.002, 0.100])
    assert summary is not None
    assert (summary.count, summary.p50, summary.max) == (4, 0.002, 0.100)
    figures = summary.as_ms("latency")
    assert figures["latency_p50_ms"] == 2.0
    assert figures["latency_p99_ms"] == 100.0
    assert figures["latency_mean_ms"] == 26.5


def test_latency_figures_without_samples_keep_their_keys() -> None:
    figures = latency_figures("latency", [])
    assert figures["latency_count"] == 0
    assert figures["latency_p99_ms"] is None
    assert set(figures) == set(latency_figures("latency", [0.001]))


def test_per_second() -> None:
    assert per_second(600, 3.0) == 200.0
    assert per_second(5, 0.0) == 0.0


def test_schedule_spreads_actions_evenly() -> None:
    assert [schedule_offset(i, 4.0) for i in range(3)] == [0.0, 0.25, 0.5]
    assert schedule_offset(1000, None) == 0.0


async def test_paced_keeps_the_rate_and_starts_every_action_once() -> None:
    started: list[tuple[int, float]] = []

    async def action(index: int) -> None:
        started.append((index, time.monotonic()))

    run = await paced(20, action, rate=100.0, max_in_flight=5, settle_timeout=1)
    assert sorted(index for index, _ in started) == list(range(20))
    assert run.launched == 20
    assert run.failed == 0
    # 19 intervals of 10 ms: not faster than the schedule, and not far behind it.
    assert 0.185 <= run.launch_seconds < 0.5


async def test_paced_caps_actions_in_flight_and_counts_failures() -> None:
    in_flight = 0
    most = 0
    gate = asyncio.Event()

    async def action(index: int) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if index == 3:
            gate.set()
        await gate.wait()
        in_flight -= 1
        if index % 2:
            raise RuntimeError("refused")

    run = await paced(8, action, rate=None, max_in_flight=4, settle_timeout=1)
    assert most == 4
    assert run.launched == 8
    assert run.failed == 4


def test_fresh_user_ids_are_distinct_valid_and_not_the_tests_range() -> None:
    users = fresh_user_ids(2000, random.Random(7))
    assert len(set(users)) == 2000
    assert all(is_vn_mobile(user) for user in users)
    assert not any(user.startswith("+849") for user in users)


def test_pair_up_puts_each_user_in_one_pair() -> None:
    assert pair_up(["a", "b", "c", "d"]) == [("a", "b"), ("c", "d")]
    with pytest.raises(ValueError, match="even"):
        pair_up(["a", "b", "c"])


def test_typing_ring_is_large_enough_that_no_pair_meets_the_throttle() -> None:
    # 1,000 events/s over 2 * 1,000 pairs: each pair every 2 s, twice the 1 s throttle.
    assert ring_size(TypingOptions(users=1000, rate=1000, throttle=1.0)) == 1000
    assert ring_size(TypingOptions(users=10, rate=1000, throttle=1.0)) == 1000
    assert ring_size(TypingOptions(users=10, rate=100, throttle=0.5)) == 50
    assert ring_size(TypingOptions(users=1, rate=1, throttle=0.0)) == 3


def test_ceiling_steps_up_to_the_maximum() -> None:
    options = CeilingOptions(start_rate=100, step_rate=100, max_rate=450)
    assert step_rates(options) == [100, 200, 300, 400]
    assert step_rates(CeilingOptions(start_rate=50, step_rate=10, max_rate=20)) == [50]


def test_targets_apply_only_at_their_size() -> None:
    small = ScenarioResult("e2e", {"users": 20, "rate": 20}, {"latency_p99_ms": 500.0})
    assert judge(small) == []
    full = ScenarioResult(
        "e2e",
        {"users": 1000, "rate": 200},
        {"latency_p50_ms": 4.0, "latency_p99_ms": 55.0, "lost": 0, "duplicates": 0},
    )
    verdicts = {v.target.figure: v.met for v in judge(full)}
    assert verdicts == {
        "latency_p50_ms": True,
        "latency_p99_ms": False,
        "lost": True,
        "duplicates": True,
    }


def test_a_missing_figure_is_no_verdict_rather_than_a_pass() -> None:
    result = ScenarioResult("connections", {"connections": 10_000}, {"connect_rate_per_s": 800})
    verdicts = {v.target.figure: v for v in judge(result)}
    assert verdicts["connect_rate_per_s"].met is True
    assert verdicts["rss_per_connection_kib"].met is None


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8001", True),
        ("http://[::1]:8002", True),
        ("amqp://guest:guest@127.0.0.2:5672/", True),
        ("http://10.0.0.5:8000", False),
        ("http://example.com:8000", False),
        ("mongodb://db.internal:27017/", False),
        ("not a url", False),
    ],
)
def test_only_loopback_addresses_are_driven(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


def test_open_file_shortfall_names_the_fix() -> None:
    limit = OpenFileLimit(soft=1024, hard=1024, raised_from=1024)
    assert shortfall(limit, 500) is None
    message = shortfall(limit, 10_000)
    assert message is not None
    assert "ulimit -Hn" in message


async def test_paced_skips_what_a_saturated_stack_holds_back_past_the_overrun() -> None:
    release = asyncio.Event()

    async def stuck(index: int) -> None:
        await release.wait()

    # Two slots, both stuck: nothing more can start, and 0.1 s after the schedule's end
    # (10 actions at 100/s) the rest is given up instead of offered late.
    started = time.monotonic()
    run = await paced(10, stuck, rate=100.0, max_in_flight=2, settle_timeout=0.05, overrun=0.1)
    assert run.launched == 2
    assert run.skipped == 8
    assert run.failed == 2  # cancelled once the settle timeout passed
    assert time.monotonic() - started < 1.0
