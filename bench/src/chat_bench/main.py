"""chat-bench: drive the real stack through WebSocket and REST only, as client apps do.

    chat-bench SCENARIO [options]     cost | connect | typing | fanout | growth | abuse
    chat-bench all [--smoke]          every scenario, default (or smoke) sizes
    chat-bench smoke                  every scenario tiny: a correctness check, not a benchmark
    chat-bench regress --against REF  one scenario on REF's stack and this tree's, A B A B,
                                      with ratios (regress.py)
    chat-bench faults [options]       fault drill on its own 3-node RabbitMQ cluster (faults.py)
    chat-bench bindings               user-key binds and unbinds per second on AMQP_URL

Without --edge-url/--messaging-url/--presence-url it uses a stack answering on ports
8000-8002, or starts one per scenario (RabbitMQ and MongoDB must be up: `make infra`).
Progress goes to stderr; stdout gets a table and, as its last line, the JSON summary that is
also written to bench/results/<UTC timestamp>-<run>.json.
"""

import argparse
import dataclasses
import os
import random
import sys
import traceback
import uuid
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import uvloop

from chat_bench import report
from chat_bench.catalog import BY_NAME, SCENARIOS, Scenario
from chat_bench.cpu import CpuMeter
from chat_bench.limits import OpenFileLimit, raise_open_file_limit, shortfall
from chat_bench.progress import Progress
from chat_bench.results import ScenarioResult
from chat_bench.scenarios.context import Context
from chat_bench.stack import Endpoints, StackChoice, StackError, choose_stack

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MONGO_URL = "mongodb://127.0.0.1:27017/"

APP_HEARTBEAT_SECONDS = 30.0
SMOKE_HEARTBEAT_SECONDS = 5.0
SETTLE_SECONDS = 120.0
SMOKE_SETTLE_SECONDS = 2.0

EXIT_INCORRECT = 1
EXIT_USAGE = 2


def _option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_scenario_options(parser: argparse.ArgumentParser, defaults: object) -> None:
    for field in dataclasses.fields(defaults):  # type: ignore[arg-type]
        default = getattr(defaults, field.name)
        parser.add_argument(
            _option_name(field.name),
            dest=field.name,
            type=type(default),
            default=default,
            metavar=type(default).__name__.upper(),
            help=f"(default {default:g})" if isinstance(default, float) else f"(default {default})",
        )


def common_options(*, given_stack: bool = True) -> argparse.ArgumentParser:
    """`given_stack`: offer a running stack's URLs (regress always starts its own)."""
    common = argparse.ArgumentParser(add_help=False)
    stack = common.add_argument_group("stack")
    if given_stack:
        stack.add_argument("--edge-url", help="ws-edge HTTP base URL, e.g. http://127.0.0.1:8000")
        stack.add_argument("--messaging-url", help="messaging base URL")
        stack.add_argument("--presence-url", help="presence base URL")
        stack.add_argument(
            "--start-stack",
            action="store_true",
            help="start a fresh stack per scenario even if one answers on ports 8000-8002",
        )
    stack.add_argument(
        "--stack-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the services chat-bench starts (repeatable)",
    )
    stack.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", DEFAULT_AMQP_URL))
    stack.add_argument("--mongo-url", default=os.environ.get("MONGO_URL", DEFAULT_MONGO_URL))
    stack.add_argument("--ready-timeout", type=float, default=60.0)
    clients = common.add_argument_group("clients")
    clients.add_argument(
        "--heartbeat-interval",
        type=float,
        default=None,
        help="every online user heartbeats this often, as the spec's app does "
        f"(default {APP_HEARTBEAT_SECONDS:g}, smoke {SMOKE_HEARTBEAT_SECONDS:g}; 0: never)",
    )
    clients.add_argument(
        "--settle-timeout",
        type=float,
        default=None,
        help="wait at most this long for presence to absorb the connections before measuring "
        f"(default {SETTLE_SECONDS:g}, smoke {SMOKE_SETTLE_SECONDS:g})",
    )
    output = common.add_argument_group("output")
    output.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="where the JSON goes (default: bench/results in the repository)",
    )
    output.add_argument("--progress-interval", type=float, default=2.0)
    output.add_argument(
        "--random-seed", dest="random_seed", type=int, default=None, help="for the random user ids"
    )
    return common


def parser() -> argparse.ArgumentParser:
    common = common_options()
    root = argparse.ArgumentParser(
        prog="chat-bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="environment settings: AMQP_URL and MONGO_URL are the defaults of --amqp-url "
        "and --mongo-url (a stack chat-bench starts itself); everything else is an option.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--version", action="version", version=f"chat-bench {version('chat-bench')}")
    commands = root.add_subparsers(dest="command", required=True, metavar="SCENARIO")
    for scenario in SCENARIOS:
        sub = commands.add_parser(scenario.name, parents=[common], help=scenario.summary)
        add_scenario_options(sub, scenario.defaults)
    every = commands.add_parser("all", parents=[common], help="every scenario at default sizes")
    every.add_argument("--smoke", action="store_true", help="every scenario tiny instead")
    commands.add_parser("smoke", parents=[common], help="every scenario tiny (for tests)")
    return root


def _is_smoke(args: argparse.Namespace) -> bool:
    return args.command == "smoke" or bool(getattr(args, "smoke", False))


def _plan(args: argparse.Namespace) -> list[tuple[Scenario[Any], Any]]:
    smoke = _is_smoke(args)
    if args.heartbeat_interval is None:
        args.heartbeat_interval = SMOKE_HEARTBEAT_SECONDS if smoke else APP_HEARTBEAT_SECONDS
    if args.settle_timeout is None:
        args.settle_timeout = SMOKE_SETTLE_SECONDS if smoke else SETTLE_SECONDS
    if args.command in BY_NAME:
        scenario = BY_NAME[args.command]
        names = [f.name for f in dataclasses.fields(scenario.defaults)]
        options = dataclasses.replace(scenario.defaults, **{n: getattr(args, n) for n in names})
        return [(scenario, options)]
    return [(s, s.smoke if smoke else s.defaults) for s in SCENARIOS]


def _given_endpoints(args: argparse.Namespace) -> Endpoints | None:
    urls = (args.edge_url, args.messaging_url, args.presence_url)
    if not any(urls):
        return None
    if not all(urls):
        raise StackError("give all of --edge-url, --messaging-url and --presence-url, or none")
    edge, messaging, presence = (url.rstrip("/") for url in urls)
    return Endpoints(edge, messaging, presence, os.environ.get("MONGO_DB", "chat"))


def stack_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise StackError(f"--stack-env wants KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


async def run_scenario(
    scenario: Scenario[Any],
    options: Any,
    endpoints: Endpoints,
    args: argparse.Namespace,
    progress: Progress,
    rng: random.Random,
) -> ScenarioResult:
    """One scenario against a running stack, with this process as the generator; the CPU
    meter finds the stack's processes by the ports they listen on."""
    meter = CpuMeter.for_stack(endpoints.by_service(), args.amqp_url, args.mongo_url)
    ctx = Context(
        endpoints,
        progress,
        rng,
        run_tag=uuid.uuid4().hex[:8],
        heartbeat_interval=args.heartbeat_interval,
        settle_timeout=args.settle_timeout,
        mongo_url=args.mongo_url,
        cpu=meter,
    )
    try:
        result: ScenarioResult = await scenario.run(ctx, options)
    finally:
        await ctx.close()
    result.figures["cpu_processes"] = ", ".join(f"{r}={p}" for r, p in sorted(meter.pids.items()))
    return result


async def _run_all(
    args: argparse.Namespace,
    plan: list[tuple[Scenario[Any], Any]],
    limit: OpenFileLimit,
    progress: Progress,
) -> tuple[list[ScenarioResult], dict[str, Any]]:
    choice: StackChoice = await choose_stack(
        _given_endpoints(args),
        force_start=args.start_stack,
        amqp_url=args.amqp_url,
        mongo_url=args.mongo_url,
        env_overrides=stack_env(args.stack_env),
        ready_timeout=args.ready_timeout,
        progress=progress,
    )
    rng = random.Random(args.random_seed)
    results: list[ScenarioResult] = []
    stacks: dict[str, Any] = {}
    for scenario, options in plan:
        progress.scenario = scenario.name
        progress.say(f"starting with {options}")
        result = ScenarioResult(scenario.name, dataclasses.asdict(options))
        try:
            async with choice.stack_for(scenario.stack_env(options)) as (endpoints, owned):
                stacks[scenario.name] = (
                    owned.description() if owned else {"owned": False, **endpoints.by_service()}
                )
                result = await run_scenario(scenario, options, endpoints, args, progress, rng)
        except Exception as error:
            # A scenario that fails (its stack would not start included) is reported, and
            # the others still run.
            traceback.print_exc(file=sys.stderr)
            result.problems.append(f"scenario failed: {type(error).__name__}: {error}")
        too_low = shortfall(limit, scenario.sockets(options))
        if too_low:
            result.notes.append(too_low)
        progress.say("correct" if result.correct else f"PROBLEMS: {result.problems}")
        results.append(result)
    return results, stacks


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("faults", "bindings"):
        # Not scenarios against a given stack: they start their own cluster or queues.
        from chat_bench import faults

        faults.main(argv[0], argv[1:])
        return
    if argv and argv[0] == "regress":
        from chat_bench import regress

        regress.main(argv[1:])
        return
    args = parser().parse_args(argv)
    plan = _plan(args)
    progress = Progress(interval=args.progress_interval)
    limit = raise_open_file_limit()
    progress.say(f"open-file limit {limit.soft} (hard {limit.hard}, was {limit.raised_from})")
    for scenario, options in plan:
        too_low = shortfall(limit, scenario.sockets(options))
        if too_low:
            progress.say(f"warning: {scenario.name}: {too_low}")
    started = datetime.now(UTC)
    try:
        results, stacks = uvloop.run(_run_all(args, plan, limit, progress))
    except StackError as error:
        print(f"chat-bench: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    finished = datetime.now(UTC)
    run_name = "smoke" if _is_smoke(args) else args.command
    results_dir = args.results_dir or report.default_results_dir()
    path = results_dir / f"{report.utc_stamp(started)}-{run_name}.json"
    settings = {
        key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
    }
    settings["open_files"] = limit.to_json()
    document = report.summary(
        run=run_name,
        started=started,
        finished=finished,
        settings=settings,
        stack=stacks,
        results=results,
        file=path,
    )
    report.write(document, path)
    print(report.table(results))
    print(f"results: {path}")
    print(report.json_line(document))
    sys.stdout.flush()
    if not document["correct"]:
        sys.exit(EXIT_INCORRECT)
