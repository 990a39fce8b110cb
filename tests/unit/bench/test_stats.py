"""chat-bench's pure logic: percentiles, pacing, user ids, target verdicts, loopback checks."""

import random

import pytest

from chat_bench.limits import OpenFileLimit, shortfall
from chat_bench.results import ScenarioResult
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


def test_fresh_user_ids_are_distinct_valid_and_not_the_tests_range() -> None:
    users = fresh_user_ids(2000, random.Random(7))
    assert len(set(users)) == 2000
    assert all(is_vn_mobile(user) for user in users)
    assert not any(user.startswith("+849") for user in users)


def test_typing_ring_is_large_enough_that_no_pair_meets_the_throttle() -> None:
    # 1,000 events/s over 2 * 1,000 pairs: each pair every 2 s, twice the 1 s throttle.
    assert ring_size(TypingOptions(users=1000, rate=1000, throttle=1.0)) == 1000
    assert ring_size(TypingOptions(users=10, rate=1000, throttle=1.0)) == 1000
    assert ring_size(TypingOptions(users=10, rate=100, throttle=0.5)) == 50
    assert ring_size(TypingOptions(users=1, rate=1, throttle=0.0)) == 3


def test_targets_apply_only_at_their_size() -> None:
    small = ScenarioResult("cost", {"users": 20}, {"rest_200_latency_p99_ms": 500.0})
    assert judge(small) == []
    full = ScenarioResult(
        "cost",
        {"users": 1000},
        {
            "rest_100_cpu_ms_per_op_servers": 12.3,
            "rest_200_latency_p50_ms": 2.5,
            "rest_200_latency_p99_ms": 55.0,
            "highest_rate_held_rest": 400.0,
            "lost": 0,
            "duplicates": 0,
        },
    )
    verdicts = {v.target.figure: v.met for v in judge(full)}
    assert verdicts == {
        "rest_100_cpu_ms_per_op_servers": False,
        "socket_100_cpu_ms_per_op_servers": None,
        "rest_200_latency_p50_ms": True,
        "rest_200_latency_p99_ms": False,
        "highest_rate_held_rest": True,
        "lost": True,
        "duplicates": True,
    }


def test_a_missing_figure_is_no_verdict_rather_than_a_pass() -> None:
    result = ScenarioResult("connect", {"connections": 5000}, {"connect_rate_per_s": 800})
    verdicts = {v.target.figure: v for v in judge(result)}
    assert verdicts["connect_rate_per_s"].met is True
    assert verdicts["edge_rss_per_socket_kib"].met is None


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
