"""How the stack runners (`make run`, `make run-cluster`) read Ctrl-C."""

import importlib.util
import signal
import sys
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


def _run_stack() -> Any:
    spec = importlib.util.spec_from_file_location("run_stack", SCRIPTS / "run_stack.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name while they are built.
    sys.modules.setdefault("run_stack", module)
    spec.loader.exec_module(module)
    return sys.modules["run_stack"]


def test_one_ctrl_c_delivered_twice_waits_for_the_grace_period() -> None:
    run_stack = _run_stack()
    signals = run_stack.StopSignals()
    assert not signals
    assert not signals.hurry()
    # The terminal's SIGINT, and the same one forwarded by `uv run` a moment later.
    signals.received = [(signal.SIGINT, 100.0), (signal.SIGINT, 100.01)]
    assert signals
    assert signals.first == "SIGINT"
    assert not signals.hurry()


def test_a_second_ctrl_c_a_moment_later_hurries() -> None:
    run_stack = _run_stack()
    signals = run_stack.StopSignals()
    signals.received = [(signal.SIGTERM, 100.0), (signal.SIGINT, 100.01), (signal.SIGINT, 101.0)]
    assert signals.first == "SIGTERM"
    assert signals.hurry()
