"""chat-bench regress: figures per side, means and the working/REF ratio, CPU first."""

from chat_bench.regress import Comparison, compare, table


def test_ratios_are_working_over_ref_of_the_means() -> None:
    ref = [{"cpu_ms_per_op_servers": 10.0, "latency_p50_ms": 4.0}, {"cpu_ms_per_op_servers": 12.0}]
    work = [{"cpu_ms_per_op_servers": 5.0, "latency_p50_ms": 6.0}, {"cpu_ms_per_op_servers": 6.0}]
    by_name = {c.figure: c for c in compare(ref, work)}
    servers = by_name["cpu_ms_per_op_servers"]
    assert (servers.ref_mean, servers.work_mean, servers.ratio) == (11.0, 5.5, 0.5)
    # A figure one run lacks is averaged over the runs that have it.
    assert by_name["latency_p50_ms"].ratio == 1.5


def test_cpu_per_operation_comes_first_servers_before_processes() -> None:
    figures = {
        "sent": 100,
        "rest_100_cpu_ms_per_op_messaging": 5.0,
        "rest_100_latency_p99_ms": 20.0,
        "rest_100_cpu_ms_per_op_servers": 9.0,
    }
    names = [c.figure for c in compare([figures], [figures])]
    assert names == [
        "rest_100_cpu_ms_per_op_servers",
        "rest_100_cpu_ms_per_op_messaging",
        "sent",
        "rest_100_latency_p99_ms",
    ]


def test_text_booleans_and_missing_figures_are_left_out_or_ratioless() -> None:
    comparisons = compare(
        [{"why": "ok", "held": True, "lost": 0, "p": None}], [{"lost": 0, "only_work": 3.0}]
    )
    by_name = {c.figure: c for c in comparisons}
    assert set(by_name) == {"lost", "only_work"}
    assert by_name["lost"].ratio is None  # 0 / 0
    assert by_name["only_work"].ratio is None
    assert by_name["only_work"].ref == ()


def test_the_table_shows_every_run_and_the_ratio() -> None:
    text = table([Comparison("cpu_ms_per_op_servers", (12.3, 13.1), (6.0, 6.4))], "9b3721298295")
    header, rule, row = text.splitlines()
    assert "REF 9b3721298295 runs" in header
    assert "working/REF" in header
    assert set(rule) <= {"-", " "}
    assert "12.3 / 13.1" in row
    assert "6 / 6.4" in row
    assert row.rstrip().endswith("0.49")
