"""The record of a run: the machine, the commit, the settings, every figure; a table for
people and one JSON document (file and last stdout line) for tools."""

import os
import platform
import re
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from chat_bench.results import Figure, ScenarioResult
from chat_bench.targets import Verdict, judge

PACKAGE_DIR = Path(__file__).resolve().parent
# Longer texts (a failure's reasons) are cut in the table; the JSON has them whole.
MAX_CELL = 48

# The figures the table shows first (the JSON has them all; the rest follow in the table).
TABLE_FIGURES: dict[str, tuple[str, ...]] = {
    "cost": ("users", "presence_settle_seconds", "sent", "lost", "duplicates", "refused"),
    "connect": (
        "connections_open",
        "connect_rate_per_s",
        "connect_p99_ms",
        "edge_rss_per_socket_kib",
        "heartbeat_ack_p50_ms",
        "heartbeat_ack_p99_ms",
        "cpu_ms_per_op_servers",
    ),
    "typing": (
        "distinct_senders",
        "offered_rate_per_s",
        "achieved_rate_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
        "delivered_of_expected",
        "duplicates",
        "cpu_ms_per_op_servers",
    ),
    "fanout": (
        "members",
        "last_delivery_p50_ms",
        "last_delivery_max_ms",
        "member_latency_p99_ms",
        "delivered_of_expected",
        "duplicates",
    ),
}
# Step tables: these columns where a step has them, then CPU ms per operation per process.
STEP_COLUMNS = (
    "step",
    "operations",
    "achieved_rate_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "answer_p99_ms",
    "refused",
    "unanswered",
    "lost",
    "duplicates",
    "generator_ms_per_request",
)
CPU_PREFIX = "cpu_ms_per_op_"
# cost's per-step copies at the top (for targets and regress): its steps table shows them.
STEP_COPY = re.compile(r"^(rest|socket)_[0-9.]+_")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or None,
    )
    mem_kib = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal:")
        ),
        None,
    )
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_mib": mem_kib // 1024 if mem_kib else None,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "platform": platform.platform(),
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=PACKAGE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def repository_root() -> Path | None:
    top = _git("rev-parse", "--show-toplevel")
    return Path(top) if top else None


def git_commit() -> str | None:
    """HEAD, with "-dirty" when the tree has changes (read-only: takes no index lock)."""
    head = _git("rev-parse", "HEAD")
    if head is None:
        return None
    status = _git("status", "--porcelain")
    return f"{head}-dirty" if status else head


def default_results_dir() -> Path:
    root = repository_root()
    return root / "bench" / "results" if root else Path.cwd() / "bench-results"


def utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def scenario_json(result: ScenarioResult) -> dict[str, Any]:
    verdicts = judge(result)
    return {
        **result.to_json(),
        "targets": [v.to_json() for v in verdicts],
    }


def summary(
    *,
    run: str,
    started: datetime,
    finished: datetime,
    settings: dict[str, Any],
    stack: dict[str, Any],
    results: list[ScenarioResult],
    file: Path,
) -> dict[str, Any]:
    verdicts = [v for r in results for v in judge(r)]
    judged = [v.met for v in verdicts if v.met is not None]
    return {
        "tool": "chat-bench",
        "run": run,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "seconds": round((finished - started).total_seconds(), 1),
        "machine": machine(),
        "commit": git_commit(),
        "settings": settings,
        "stack": stack,
        "correct": all(r.correct for r in results),
        "targets_met": all(judged) if judged else None,
        "results": {r.scenario: scenario_json(r) for r in results},
        "file": str(file),
    }


def write(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


def json_line(document: dict[str, Any]) -> str:
    return orjson.dumps(document).decode()


def _cell(value: Figure) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def _verdict_cells(verdict: Verdict | None) -> tuple[str, str]:
    if verdict is None:
        return "", ""
    met = {True: "met", False: "MISSED", None: "no figure"}[verdict.met]
    return verdict.target.label(), met


def table(results: list[ScenarioResult]) -> str:
    rows: list[tuple[str, str, str, str, str]] = [("scenario", "figure", "value", "target", "")]
    for result in results:
        verdicts = {v.target.figure: v for v in judge(result)}
        first = TABLE_FIGURES.get(result.scenario, ())
        names = [*first, *(n for n in result.figures if n not in first)]
        label = result.scenario + ("" if result.correct else " (INCORRECT)")
        for name in names:
            if name not in result.figures or (STEP_COPY.match(name) and name not in verdicts):
                continue
            target, met = _verdict_cells(verdicts.get(name))
            rows.append((label, name, _cell(result.figures[name]), target, met))
            label = ""
    lines = columns(rows)
    for result in results:
        if result.rows:
            lines += ["", f"{result.scenario} steps (CPU: ms per operation):", *steps(result.rows)]
        for problem in result.problems:
            lines.append(f"{result.scenario}: PROBLEM: {problem}")
        for note in result.notes:
            lines.append(f"{result.scenario}: note: {note}")
    return "\n".join(lines)


def columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns, a rule under the first row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def steps(rows: list[dict[str, Figure]]) -> list[str]:
    present = {key for row in rows for key in row}
    names = [c for c in STEP_COLUMNS if c in present]
    cpu = sorted(k for k in present if k.startswith(CPU_PREFIX))
    names += cpu
    if "why" in present:
        names.append("why")
    header = tuple(n.removeprefix(CPU_PREFIX) for n in names)
    return columns([header, *(tuple(_cell(row.get(n)) for n in names) for row in rows)])
