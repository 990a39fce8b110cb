"""`make run`'s stack runner under a real Ctrl-C: SIGINT to its whole process group, as a
terminal sends it, with the `uv run` wrapper the Makefile starts it through."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chat_core.broker import Topology
from tests.support.cleanup import remove_run_blocking
from tests.support.stack import run_names

REPO = Path(__file__).resolve().parents[3]
PORTS = (8000, 8001, 8002, 8080)


def _in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(240)
def test_ctrl_c_stops_every_service_gracefully(amqp_url: str, mongo_url: str) -> None:
    busy = [port for port in PORTS if _in_use(port)]
    if busy:
        pytest.skip(f"a stack already runs on the fixed ports {busy} (make run?)")
    db_name, prefix = run_names()
    env = {
        **os.environ,
        "AMQP_URL": amqp_url,
        "MONGO_URL": mongo_url,
        "MONGO_DB": db_name,
        "BROKER_PREFIX": prefix,
        "DRAIN_SECONDS": "0.5",
        "NO_COLOR": "1",
    }
    runner = subprocess.Popen(
        ["uv", "run", "--no-sync", sys.executable, "scripts/run_stack.py"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert runner.stdout is not None
        for line in runner.stdout:
            lines.append(line)
            if "stack ready" in line:
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert ready.wait(150), "".join(lines[-40:])
        os.killpg(runner.pid, signal.SIGINT)
        started = time.monotonic()
        assert runner.wait(60) == 0, "".join(lines[-40:])
        stopped_in = time.monotonic() - started
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
        reader.join(5)
        if runner.stdout is not None:
            runner.stdout.close()
        remove_run_blocking(amqp_url, mongo_url, Topology(prefix), db_name)
    output = "".join(lines)
    assert "received SIGINT" in output
    assert "did not stop in time" not in output, output[-3000:]
    # Each service ran its own shutdown: the edge drained, the others closed down cleanly.
    assert "drained" in output
    assert output.count("Application shutdown complete") >= 3
    assert stopped_in < 30
    assert not any(_in_use(port) for port in PORTS)
