"""chat-bench never rots: a tiny run of every scenario against this session's stack.

It checks correctness only (nothing lost, nothing duplicated, every scenario measured
something), never speed: a loaded CI machine may be slow, but it must not lose messages.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import ServiceProcess, Stack

BIN = Path(sys.executable).parent
SCENARIOS = ("cost", "connect", "typing", "fanout", "growth", "abuse")
# Inside the fixture's budget below, which also pays for starting the session stack.
SMOKE_TIMEOUT = 120


@dataclass(frozen=True)
class SmokeRun:
    returncode: int
    stdout: str
    stderr: str
    summary: dict[str, Any]
    results_dir: Path

    def figures(self, scenario: str) -> dict[str, Any]:
        figures: dict[str, Any] = self.summary["results"][scenario]["figures"]
        return figures


@pytest.fixture(scope="module")
def smoke(
    stack: Stack,
    edge: ServiceProcess,
    messaging: ServiceProcess,
    presence: ServiceProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> SmokeRun:
    results_dir = tmp_path_factory.mktemp("bench-results")
    command = [
        str(BIN / "chat-bench"),
        "smoke",
        "--edge-url",
        edge.http_url,
        "--messaging-url",
        messaging.http_url,
        "--presence-url",
        presence.http_url,
        "--results-dir",
        str(results_dir),
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=SMOKE_TIMEOUT,
            check=False,
            # The growth scenario seeds the stack's own database.
            env={**os.environ, "MONGO_DB": stack.db_name},
        )
    except subprocess.TimeoutExpired as expired:
        # The partial output comes as bytes even in text mode.
        raw = expired.stderr or b""
        progress = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        pytest.fail(f"chat-bench smoke ran over {SMOKE_TIMEOUT}s:\n{progress[-4000:]}")
    lines = done.stdout.strip().splitlines()
    assert lines, f"chat-bench printed nothing; stderr:\n{done.stderr[-4000:]}"
    return SmokeRun(done.returncode, done.stdout, done.stderr, json.loads(lines[-1]), results_dir)


@pytest.mark.timeout(210)
def test_the_smoke_run_succeeds_and_every_scenario_is_correct(smoke: SmokeRun) -> None:
    problems = {
        name: result["problems"]
        for name, result in smoke.summary["results"].items()
        if result["problems"]
    }
    assert problems == {}, smoke.stderr[-4000:]
    assert smoke.returncode == 0, smoke.stderr[-4000:]
    assert smoke.summary["correct"] is True
    assert tuple(smoke.summary["results"]) == SCENARIOS


def test_the_last_line_is_the_json_written_to_the_results_directory(smoke: SmokeRun) -> None:
    (written,) = smoke.results_dir.glob("*-smoke.json")
    assert json.loads(written.read_text()) == smoke.summary
    assert smoke.summary["file"] == str(written)
    assert smoke.summary["machine"]["cpu_count"] >= 1
    assert smoke.summary["settings"]["command"] == "smoke"
    # The table came before it, on stdout; progress went to stderr.
    assert "scenario" in smoke.stdout
    assert "cost:" in smoke.stderr


def test_every_send_arrives_once_at_every_step_both_ways(smoke: SmokeRun) -> None:
    cost = smoke.figures("cost")
    rows = smoke.summary["results"]["cost"]["rows"]
    assert cost["sent"] > 0
    assert cost["accepted"] == cost["sent"]
    assert (cost["lost"], cost["duplicates"], cost["unexpected_frames"]) == (0, 0, 0)
    vias = ["rest", "socket"] if cost["socket_send_supported"] else ["rest"]
    assert [row["via"] for row in rows] == vias * 2  # two rates
    for row in rows:
        assert row["sent"] == row["accepted"] > 0
        assert (row["lost"], row["duplicates"], row["refused"]) == (0, 0, 0)
        assert 0 < row["latency_p50_ms"] <= row["latency_p99_ms"]
        assert row["answer_p99_ms"] > 0


def test_a_stack_without_socket_sends_is_reported_not_failed(smoke: SmokeRun) -> None:
    result = smoke.summary["results"]["cost"]
    if result["figures"]["socket_send_supported"]:
        pytest.skip("this stack takes send_message over the socket")
    assert any("socket sends unsupported" in note for note in result["notes"])


def test_typing_events_all_arrive_once(smoke: SmokeRun) -> None:
    typing = smoke.figures("typing")
    assert typing["expected"] > 0
    assert typing["delivered"] == typing["expected"]
    assert (typing["lost"], typing["duplicates"], typing["errors"]) == (0, 0, 0)
    assert typing["latency_p99_ms"] is not None


def test_fanout_reaches_every_member_once(smoke: SmokeRun) -> None:
    fanout = smoke.figures("fanout")
    assert fanout["expected"] == fanout["members"] * (fanout["rounds"] + 1)
    assert fanout["delivered"] == fanout["expected"]
    assert (fanout["lost"], fanout["duplicates"]) == (0, 0)
    assert fanout["last_delivery_max_ms"] is not None


def test_connects_are_all_admitted_and_measured(smoke: SmokeRun) -> None:
    connect = smoke.figures("connect")
    assert connect["connections_open"] == connect["connections_requested"]
    assert (connect["connect_failures"], connect["dropped_while_held"]) == (0, 0)
    assert connect["heartbeat_failures"] == 0
    assert connect["heartbeat_ack_count"] > 0
    assert connect["edge_rss_per_socket_kib"] is not None
    assert connect["connect_rate_per_s"] > 0


def test_growth_measures_every_figure_before_and_after_seeding(smoke: SmokeRun) -> None:
    growth = smoke.figures("growth")
    for name in (
        "chat_list_ms",
        "history_newest_ms",
        "history_oldest_ms",
        "after_seq_page_ms",
        "send_ms",
        "sync_ms",
        "read_receipt_ms",
        "resume_ms",
    ):
        assert growth[f"{name}_at_0"] > 0
        assert growth[f"{name}_at_n"] > 0
        assert growth[f"{name}_ratio"] is not None


def test_cpu_per_operation_is_reported_per_process_and_step(smoke: SmokeRun) -> None:
    for scenario in ("cost", "connect", "typing", "fanout"):
        rows = smoke.summary["results"][scenario]["rows"]
        assert rows, scenario
        for row in rows:
            # Clock ticks are 10 ms: a tiny step may round to 0, but never lack the figure.
            assert row["cpu_ms_per_op_total"] > 0 or scenario != "cost", row
            assert "cpu_ms_per_op_generator" in row
            for role in ("ws_edge", "messaging", "presence", "broker", "database"):
                assert f"cpu_ms_per_op_{role}" in row, (scenario, row)


def test_the_abuse_run_measures_the_bystander_and_the_stuck_socket(smoke: SmokeRun) -> None:
    abuse = smoke.figures("abuse")
    assert abuse["bystander_before_count"] >= 1
    assert abuse["bystander_during_count"] >= 1
    assert abuse["flood_frames_sent"] > 0
    assert abuse["stuck_sent_messages"] >= 1
    assert abuse["stuck_refused_sends"] == 0
