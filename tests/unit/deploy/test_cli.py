"""Every command line answers --version and a --help naming the settings it reads.

Each entry point's own `main` runs in-process (argparse exits before anything starts), so
this checks the console scripts' code without paying five interpreter start-ups.
"""

from collections.abc import Callable

import pytest

from chat_bench.main import main as bench_main
from chat_core.admin import main as admin_main
from messaging.main import main as messaging_main
from presence.main import main as presence_main
from ws_edge.main import main as edge_main

# program -> (entry point, settings its --help must name)
PROGRAMS: dict[str, tuple[Callable[[], None], tuple[str, ...]]] = {
    "ws-edge": (edge_main, ("AMQP_URL", "EDGE_ID", "DRAIN_SECONDS")),
    "messaging": (messaging_main, ("MONGO_URL", "MAX_CONTENT_CHARS")),
    "presence": (presence_main, ("AUTH_MODE", "EDGE_TIMEOUT_SECONDS")),
    "chat-admin": (admin_main, ("AMQP_URL", "MONGO_DB")),
    "chat-bench": (bench_main, ("AMQP_URL", "MONGO_URL")),
}


def run(
    program: str, flag: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    monkeypatch.setattr("sys.argv", [program, flag])
    with pytest.raises(SystemExit) as exited:
        PROGRAMS[program][0]()
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("program", PROGRAMS)
def test_version_and_help(
    program: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(program, "--version", monkeypatch, capsys).startswith(f"{program} 0.")
    shown = run(program, "--help", monkeypatch, capsys)
    for name in PROGRAMS[program][1]:
        assert name in shown, name


def test_admin_help_shows_examples(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = run("chat-admin", "--help", monkeypatch, capsys)
    assert "examples:" in shown
    assert "chat-admin users disable +84" in shown
