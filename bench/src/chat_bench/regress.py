"""chat-bench regress --against REF: is this working tree more expensive than REF?

REF is checked out (detached) in a git worktree under `.bench-worktrees/<commit>` (ignored by
git, kept between runs) with its own environment (`uv sync --all-packages --frozen` there).
Then one scenario runs on REF's stack (its services from its venv) and on this tree's (from
this venv), alternately, REF first (A B A B, `--rounds` of each), always with THIS tree's
generator, each run on a fresh stack: its own database and broker prefix, `chat-admin
migrate` first where that checkout has it. The table gives each figure per side and run, the
means and the ratio working/REF, CPU per operation per process first; the JSON summary is the
last line and is saved under bench/results/.
"""

import argparse
import dataclasses
import math
import os
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from chat_bench import report
from chat_bench.catalog import BY_NAME, Scenario
from chat_bench.limits import raise_open_file_limit
from chat_bench.main import add_scenario_options, common_options, run_scenario, stack_env
from chat_bench.progress import Progress
from chat_bench.results import Figure, ScenarioResult
from chat_bench.stack import OwnedStack, StackError, check_infrastructure, this_venv

CACHE_DIR = ".bench-worktrees"
SIDES = ("ref", "work")
OUR_ENVIRONMENT = frozenset({"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"})
EXIT_INCORRECT = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Comparison:
    figure: str
    ref: tuple[float, ...]
    work: tuple[float, ...]

    @staticmethod
    def _mean(values: tuple[float, ...]) -> float | None:
        return math.fsum(values) / len(values) if values else None

    @property
    def ref_mean(self) -> float | None:
        return self._mean(self.ref)

    @property
    def work_mean(self) -> float | None:
        return self._mean(self.work)

    @property
    def ratio(self) -> float | None:
        """working / REF: above 1 is more expensive (or slower) than REF."""
        ref, work = self.ref_mean, self.work_mean
        if ref is None or work is None or ref == 0:
            return None
        return round(work / ref, 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "ref": list(self.ref),
            "work": list(self.work),
            "ref_mean": self.ref_mean,
            "work_mean": self.work_mean,
            "ratio": self.ratio,
        }


def _number(value: Figure) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


Runs = Sequence[Mapping[str, Figure]]


def compare(ref_runs: Runs, work_runs: Runs) -> list[Comparison]:
    """Every numeric figure either side has, CPU per operation first (servers' total, then
    each process), then the rest in the order the scenario reports them."""
    names: dict[str, None] = {}
    for figures in (*ref_runs, *work_runs):
        names.update(dict.fromkeys(n for n, v in figures.items() if _number(v) is not None))

    def values(runs: Runs, name: str) -> tuple[float, ...]:
        found = (_number(run.get(name)) for run in runs)
        return tuple(v for v in found if v is not None)

    def order(name: str) -> tuple[int, int]:
        position = list(names).index(name)
        if "cpu_ms_per_op_servers" in name:
            return (0, position)
        return (1 if "cpu_ms_per_op" in name else 2, position)

    return [
        Comparison(name, values(ref_runs, name), values(work_runs, name))
        for name in sorted(names, key=order)
    ]


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"


def table(comparisons: Sequence[Comparison], ref_label: str) -> str:
    header = ("figure", f"REF {ref_label} runs", "working runs", "REF", "working", "working/REF")
    rows = [header]
    for c in comparisons:
        rows.append(
            (
                c.figure,
                " / ".join(_cell(v) for v in c.ref),
                " / ".join(_cell(v) for v in c.work),
                _cell(c.ref_mean),
                _cell(c.work_mean),
                "-" if c.ratio is None else f"{c.ratio:.2f}",
            )
        )
    return "\n".join(report.columns(rows))


# --- the two checkouts ---------------------------------------------------------------------


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise StackError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def prepare_ref(root: Path, ref: str, progress: Progress) -> tuple[str, Path]:
    """(commit, its venv's bin directory): the worktree made once, synced every time."""
    commit = _git(root, "rev-parse", "--verify", f"{ref}^{{commit}}")
    tree = root / CACHE_DIR / commit[:12]
    if not tree.is_dir():
        progress.say(f"checking out {commit[:12]} into {tree}")
        # A cache directory removed by hand leaves its registration behind: clear those.
        _git(root, "worktree", "prune")
        _git(root, "worktree", "add", "--detach", str(tree), commit)
    progress.say(f"syncing {tree}/.venv (uv sync --all-packages --frozen)")
    # Its own environment: nothing of this one's may leak into the other checkout's sync.
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }
    done = subprocess.run(
        ["uv", "sync", "--all-packages", "--frozen"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise StackError(f"uv sync in {tree} failed:\n{done.stderr[-3000:]}")
    return commit, tree / ".venv" / "bin"


# --- the runs ------------------------------------------------------------------------------


async def _one_run(
    side: str,
    bin_dir: Path,
    scenario: Scenario[Any],
    options: Any,
    args: argparse.Namespace,
    progress: Progress,
    rng: random.Random,
) -> tuple[ScenarioResult, dict[str, object]]:
    env = {**scenario.stack_env(options), **stack_env(args.stack_env)}
    stack = OwnedStack(args.amqp_url, args.mongo_url, env, progress, bin_dir=bin_dir)
    try:
        endpoints = await stack.start(args.ready_timeout)
        result = await run_scenario(scenario, options, endpoints, args, progress, rng)
        return result, {"side": side, **stack.description()}
    finally:
        await stack.stop()


async def _all_runs(
    sides: dict[str, Path],
    scenario: Scenario[Any],
    options: Any,
    args: argparse.Namespace,
    progress: Progress,
) -> dict[str, list[tuple[ScenarioResult, dict[str, object]]]]:
    rng = random.Random(args.random_seed)
    runs: dict[str, list[tuple[ScenarioResult, dict[str, object]]]] = {s: [] for s in sides}
    for number in range(1, args.rounds + 1):
        for side, bin_dir in sides.items():
            progress.scenario = f"{scenario.name} {side} {number}/{args.rounds}"
            try:
                runs[side].append(
                    await _one_run(side, bin_dir, scenario, options, args, progress, rng)
                )
            except Exception as error:
                failed = ScenarioResult(scenario.name, dataclasses.asdict(options))
                failed.problems.append(f"run failed: {type(error).__name__}: {error}")
                runs[side].append((failed, {"side": side}))
                progress.say(failed.problems[-1])
    return runs


def parser(scenario_name: str) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="chat-bench regress",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        parents=[common_options(given_stack=False)],
    )
    root.add_argument("--against", required=True, metavar="REF", help="a commit, tag or branch")
    root.add_argument("--scenario", default=scenario_name, choices=sorted(BY_NAME))
    root.add_argument("--rounds", type=int, default=2, help="runs per side (default 2)")
    add_scenario_options(root, BY_NAME[scenario_name].defaults)
    return root


def main(argv: list[str]) -> None:
    # The scenario decides which options exist: read it first, then parse everything.
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--scenario", default="cost", choices=sorted(BY_NAME))
    known, _ = probe.parse_known_args(argv)
    args = parser(known.scenario).parse_args(argv)
    if args.rounds < 1:
        print("chat-bench regress: --rounds must be at least 1", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    scenario = BY_NAME[args.scenario]
    names = [f.name for f in dataclasses.fields(scenario.defaults)]
    options = dataclasses.replace(scenario.defaults, **{n: getattr(args, n) for n in names})
    args.heartbeat_interval = 30.0 if args.heartbeat_interval is None else args.heartbeat_interval
    args.settle_timeout = 120.0 if args.settle_timeout is None else args.settle_timeout
    progress = Progress(interval=args.progress_interval)
    raise_open_file_limit()
    root = report.repository_root()
    started = datetime.now(UTC)
    try:
        if root is None:
            raise StackError("regress runs inside the repository's git checkout")
        stack_env(args.stack_env)  # a bad KEY=VALUE is a usage error before anything starts
        check_infrastructure(args.amqp_url, args.mongo_url)
        commit, ref_bin = prepare_ref(root, args.against, progress)
        runs = uvloop.run(
            _all_runs({"ref": ref_bin, "work": this_venv()}, scenario, options, args, progress)
        )
    except StackError as error:
        print(f"chat-bench regress: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    finished = datetime.now(UTC)
    comparisons = compare(*([r.figures for r, _ in runs[side]] for side in SIDES))
    results_dir = args.results_dir or report.default_results_dir()
    path = results_dir / f"{report.utc_stamp(started)}-regress-{scenario.name}.json"
    correct = all(r.correct for side in SIDES for r, _ in runs[side])
    document = {
        "tool": "chat-bench",
        "run": "regress",
        "scenario": scenario.name,
        "against": {"ref": args.against, "commit": commit},
        "working": report.git_commit(),
        "rounds": args.rounds,
        "order": "REF then working, alternately",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "machine": report.machine(),
        "settings": dataclasses.asdict(options),
        "correct": correct,
        "comparisons": [c.to_json() for c in comparisons],
        "runs": {
            side: [{"stack": stack, **report.scenario_json(r)} for r, stack in runs[side]]
            for side in SIDES
        },
        "file": str(path),
    }
    report.write(document, path)
    print(table(comparisons, commit[:12]))
    for side in SIDES:
        for number, (result, _) in enumerate(runs[side], 1):
            for problem in result.problems:
                print(f"{side} run {number}: PROBLEM: {problem}")
            for note in result.notes:
                print(f"{side} run {number}: note: {note}")
    print(f"results: {path}")
    print(report.json_line(document))
    sys.stdout.flush()
    if not correct:
        sys.exit(EXIT_INCORRECT)
