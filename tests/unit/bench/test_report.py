"""The table people read: figures, then each scenario's steps with CPU per process."""

from chat_bench.report import steps, table
from chat_bench.results import Figure, ScenarioResult


def test_steps_show_their_columns_then_cpu_per_process_then_why() -> None:
    rows: list[dict[str, Figure]] = [
        {"step": "rest 100/s", "latency_p99_ms": 9.5, "cpu_ms_per_op_messaging": 4.0, "why": "ok"},
        {"step": "rest 200/s", "latency_p99_ms": None, "cpu_ms_per_op_messaging": 3.5},
    ]
    header, _rule, first, second = steps(rows)
    assert header.split() == ["step", "latency_p99_ms", "messaging", "why"]
    assert first.split() == ["rest", "100/s", "9.50", "4.00", "ok"]
    assert second.split() == ["rest", "200/s", "-", "3.50", "-"]


def test_cost_step_copies_stay_out_of_the_figures_unless_a_target_judges_them() -> None:
    result = ScenarioResult(
        "cost",
        {"users": 1000},
        {"lost": 0, "rest_100_latency_p99_ms": 12.0, "rest_100_cpu_ms_per_op_servers": 2.5},
    )
    text = table([result])
    assert "rest_100_latency_p99_ms" not in text
    assert "rest_100_cpu_ms_per_op_servers" in text  # a target: <= 3
    assert "met" in text
