"""RabbitMQ nodes a cluster runner starts do not outlive it: they die with it, or the next
start stops them. Fake nodes (a shell script in place of rabbitmq-server), so no broker."""

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


def load_rabbit_cluster() -> Any:
    spec = importlib.util.spec_from_file_location("rabbit_cluster", SCRIPTS / "rabbit_cluster.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("rabbit_cluster", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z"
    except OSError:
        return True


def wait_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def test_next_start_stops_the_nodes_a_dead_runner_left(tmp_path: Path) -> None:
    cluster = load_rabbit_cluster().RabbitCluster(tmp_path, size=2)
    leftover = subprocess.Popen(["sleep", "300"])
    try:
        node = cluster.nodes[1]
        node.base.mkdir(parents=True)
        node.pid_file.write_text(f"{leftover.pid}\n")
        cluster.data.mkdir(exist_ok=True)
        cluster.runner_file.write_text(f"{dead_pid()}\n")
        assert cluster.clear_leftovers() == [node.name]
        assert leftover.wait(10) == -signal.SIGTERM
        assert not cluster.runner_file.exists()
    finally:
        leftover.kill()
        leftover.wait()


def test_a_live_runners_nodes_are_not_touched(tmp_path: Path) -> None:
    cluster = load_rabbit_cluster().RabbitCluster(tmp_path)
    runner = subprocess.Popen(["sleep", "300"])
    try:
        cluster.data.mkdir(exist_ok=True)
        cluster.runner_file.write_text(f"{runner.pid}\n")
        with pytest.raises(RuntimeError, match=f"in use by process {runner.pid}"):
            cluster.clear_leftovers()
        assert runner.poll() is None
    finally:
        runner.kill()
        runner.wait()


RUNNER = """
import importlib.util, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("rabbit_cluster", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["rabbit_cluster"] = module
spec.loader.exec_module(module)
module.SBIN = Path(sys.argv[2])
cluster = module.RabbitCluster(Path(sys.argv[3]), size=1)
cluster.nodes[0].start()
print(cluster.nodes[0].process.pid, flush=True)
time.sleep(300)
"""

# Like Debian's wrapper: stays in front of the VM and stops it on SIGTERM.
FAKE_SERVER = """#!/bin/sh
trap 'exit 0' TERM
sleep 300 &
wait
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_node_dies_with_its_runner_even_on_sigkill(tmp_path: Path) -> None:
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    server = sbin / "rabbitmq-server"
    server.write_text(FAKE_SERVER)
    server.chmod(0o755)
    runner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RUNNER,
            str(SCRIPTS / "rabbit_cluster.py"),
            str(sbin),
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert runner.stdout is not None
    node_pid = int(runner.stdout.readline())
    try:
        assert not gone(node_pid)
        runner.kill()
        runner.wait(10)
        assert wait_gone(node_pid, 10), "the node outlived its runner"
    finally:
        runner.stdout.close()
        runner.kill()
        runner.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node_pid, signal.SIGKILL)
