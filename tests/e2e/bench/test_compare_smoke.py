"""`chat-bench compare --smoke`: both stacks driven end to end, tiny sizes, correctness only.

It runs only when Centrifugo is already built (scripts/ensure_centrifugo.sh caches it outside
the work tree): building it takes minutes, which `make test` must not spend.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
ENSURE = REPO / "scripts" / "ensure_centrifugo.sh"
BIN = Path(sys.executable).parent
NOT_CACHED = 3
RUN_TIMEOUT = 150


def cached_centrifugo() -> Path:
    done = subprocess.run(
        ["bash", str(ENSURE), "--cached"], capture_output=True, text=True, check=False
    )
    if done.returncode == NOT_CACHED:
        pytest.skip(
            "Centrifugo v6.9.1 is not built on this machine; `bash scripts/ensure_centrifugo.sh` "
            "builds it (minutes), after which this smoke run of `chat-bench compare` runs"
        )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_compare_smoke_drives_both_stacks_correctly(
    amqp_url: str, mongo_url: str, tmp_path: Path
) -> None:
    cached_centrifugo()
    command = [
        str(BIN / "chat-bench"),
        "compare",
        "--smoke",
        "--no-build",
        "--amqp-url",
        amqp_url,
        "--mongo-url",
        mongo_url,
        "--results-dir",
        str(tmp_path),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as expired:
        raw = expired.stderr or b""
        progress = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        pytest.fail(f"chat-bench compare --smoke ran over {RUN_TIMEOUT}s:\n{progress[-4000:]}")
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-4000:]
    summary: dict[str, Any] = json.loads(lines[-1])
    result = summary["results"]["compare"]
    assert result["problems"] == [], done.stderr[-4000:]
    assert done.returncode == 0, done.stderr[-4000:]
    (written,) = tmp_path.glob("*-compare-smoke.json")
    assert json.loads(written.read_text()) == summary

    figures = result["figures"]
    sockets = result["settings"]["sockets"]
    for side in ("ours", "centrifugo"):
        assert figures[f"{side}_sockets_open"] == sockets
        assert figures[f"{side}_connect_rate_per_s"] > 0
        assert figures[f"{side}_server_rss_after_kib"] > 0
        assert figures[f"{side}_rss_per_socket_kib"] is not None
        assert figures[f"{side}_sent"] > 0
        assert figures[f"{side}_delivered"] == figures[f"{side}_sent"]
        assert (figures[f"{side}_lost"], figures[f"{side}_duplicates"]) == (0, 0)
        assert 0 < figures[f"{side}_latency_p50_ms"] <= figures[f"{side}_latency_p99_ms"]
        assert figures[f"{side}_cpu_ms_per_send_total"] > 0
        assert figures[f"{side}_cpu_ms_per_connect_load_generator"] >= 0
    assert figures["centrifugo_cpu_ms_per_send_centrifugo"] >= 0
    assert figures["ours_heartbeat_ack_while_connecting_count"] > 0
    assert "centrifugo_heartbeat_ack_while_connecting_p99_ms" not in figures
    assert figures["ratio_latency_p50_ms"] > 0

    # The table, the per-process CPU and the notes on what each side measures, before the JSON.
    table = done.stdout
    assert "ours/Centrifugo" in table
    assert "CPU ms per send by process: ours: " in table
    assert "two round trips" in table
    assert "memory only" in table
