"""chat_launcher with real processes: readiness, an early exit, and SIGKILL after the grace."""

import os
import signal
import sys
from pathlib import Path

import pytest
from chat_launcher import NotReady, free_port, launch, stop_all, wait_ready

# Answers GET /readyz with 200 once `delay` seconds have passed; optionally ignores SIGTERM.
SERVER = """
import http.server, signal, sys, time
port, delay, stubborn = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
if stubborn:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
started = time.monotonic()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ready = self.path == "/readyz" and time.monotonic() - started >= delay
        self.send_response(200 if ready else 503)
        self.end_headers()
    def log_message(self, *args):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def server(tmp_path: Path, port: int, delay: float = 0.0, stubborn: bool = False) -> list[str]:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    return [sys.executable, str(script), str(port), str(delay), "1" if stubborn else "0"]


def test_waits_until_every_service_answers_readyz(tmp_path: Path) -> None:
    port = free_port()
    command = server(tmp_path, port, delay=0.5)
    slow = launch("slow", port, os.environ, command=command, log_path=tmp_path / "slow.log")
    try:
        wait_ready([slow], timeout=20)
        assert slow.ready
        assert "serving" in slow.log_text()
    finally:
        slow.stop()
    assert not slow.running


def test_a_service_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "print('cannot start: no config'); raise SystemExit(3)"]
    doomed = launch("doomed", free_port(), os.environ, command=command, log_path=tmp_path / "d.log")

    with pytest.raises(NotReady, match=r"doomed exited with 3:\n.*cannot start: no config"):
        wait_ready([doomed], timeout=20)


def test_one_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    port = free_port()
    command = server(tmp_path, port, stubborn=True)
    stubborn = launch("stubborn", port, os.environ, command=command, log_path=tmp_path / "s.log")
    wait_ready([stubborn], timeout=20)
    killed: list[str] = []

    stop_all([stubborn], grace=0.5, on_kill=lambda s: killed.append(s.name))

    assert killed == ["stubborn"]
    assert stubborn.process.returncode == -signal.SIGKILL
