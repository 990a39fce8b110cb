"""A RabbitMQ cluster of local nodes from Debian's rabbitmq-server, beside the dev node.

Usage (from the repository root):

    python3 scripts/rabbit_cluster.py up [--data DIR]    start or resume it; Ctrl-C stops it
    python3 scripts/rabbit_cluster.py down [--data DIR]  stop nodes a killed `up` left running

Node i (1-based) is `rabbit-i@localhost` with AMQP on 5680+i and Erlang distribution on
25680+i, bound to 127.0.0.1, nothing else listening (no management plugin). Each node has its
own data, log and config directory under DIR (default `$STACK_DATA/rabbit-cluster`), and the
cluster its own Erlang cookie in DIR/home: the dev node of `make infra` (rabbit@localhost,
5672/25672, cookie in /var/lib/rabbitmq) is neither read nor touched. Nodes 2..n join node 1
with `rabbitmqctl join_cluster`; a restart reuses the data, and the nodes find each other again.

The tests import `RabbitCluster` with other node names and free ports, so a test run and a
`make run-cluster` can coexist. Standard library only.

Nodes run in a session of their own (a Ctrl-C meant for the runner does not reach them), so
a runner that is killed cannot stop them in order. Two things keep them from outliving it:
a node started from the runner's main thread is SIGTERMed by Linux when the runner dies
(PR_SET_PDEATHSIG; the wrapper script then stops the VM), and `start` stops nodes that a
dead runner left behind (DIR/runner.pid names the runner; a live one is refused).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

SBIN = Path("/usr/lib/rabbitmq/bin")
HOST = "127.0.0.1"
DEFAULT_AMQP_BASE = 5680
DEFAULT_DIST_BASE = 25680
START_TIMEOUT = 120.0


def log(message: str) -> None:
    print(f"rabbit_cluster | {message}", file=sys.stderr, flush=True)


def ensure_installed() -> None:
    """Debian's rabbitmq-server (what `make infra` installs), installed here when missing."""
    if (SBIN / "rabbitmq-server").exists():
        return
    log("installing Debian's rabbitmq-server (apt-get)")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "rabbitmq-server"],
        check=True,
        env=env,
    )
    # The package starts the default node on hosts without a policy-rc.d; that node is the
    # dev node of `make infra`, which is fine to leave running.


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def die_with_runner() -> Callable[[], None] | None:
    """A preexec_fn that has Linux SIGTERM the child when the runner dies, even by SIGKILL
    (chat_launcher.die_with_parent's mechanism; this script is standard library only).
    Only from the main thread: the signal follows the thread that forked, and a worker
    thread that ends would stop the node with it."""
    if (
        not sys.platform.startswith("linux")
        or threading.current_thread() is not threading.main_thread()
    ):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    runner = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != runner:  # the runner died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


@dataclass
class Node:
    index: int
    name: str
    amqp_port: int
    dist_port: int
    base: Path
    home: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{HOST}:{self.amqp_port}/"

    @property
    def pid_file(self) -> Path:
        return self.base / "beam.pid"

    @property
    def log_dir(self) -> Path:
        return self.base / "log"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_"))
        }
        env.update(
            HOME=str(self.home),
            PATH=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin",
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_MNESIA_DIR=str(self.base / "mnesia" / self.name),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq.config"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            # Our own (empty) env file instead of /etc/rabbitmq/rabbitmq-env.conf.
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.pid_file),
            # Erlang distribution on loopback only.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def write_config(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        # Erlang terms rather than rabbitmq.conf: no cuttlefish schema pass at boot, which
        # is a good part of a node's start on a busy two-core machine.
        (self.base / "rabbitmq.config").write_text(
            "[{rabbit, ["
            f'{{tcp_listeners, [{{"{HOST}", {self.amqp_port}}}]}}, '
            # A minority side stops serving instead of diverging; quorum queues need a
            # majority anyway.
            "{cluster_partition_handling, pause_minority}, "
            "{disk_free_limit, {absolute, 50000000}}"
            "]}].\n"
        )
        (self.base / "advanced.config").write_text("[].\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")

    def beam_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self) -> None:
        self.write_config()
        self.pid_file.unlink(missing_ok=True)
        out = (self.log_dir / "startup.log").open("ab")
        self.process = subprocess.Popen(
            [str(SBIN / "rabbitmq-server")],
            env=self.env(),
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own session and process group (the wrapper script and the Erlang VM): a
            # Ctrl-C meant for the runner does not reach the node, which the runner then
            # stops in order.
            start_new_session=True,
            preexec_fn=die_with_runner(),
        )
        out.close()

    def ctl(self, *args: str, timeout: float = 60.0, check: bool = True) -> str:
        result = subprocess.run(
            [str(SBIN / "rabbitmqctl"), "-n", self.name, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl -n {self.name} {' '.join(args)} failed "
                f"({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout

    def await_startup(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited while starting; see {self.log_dir}")
            if port_open(self.amqp_port):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{self.name} did not open {self.amqp_port} in {timeout}s")
        remaining = max(5, int(deadline - time.monotonic()))
        self.ctl("await_startup", "--timeout", str(remaining), timeout=remaining + 10)

    def running_nodes(self) -> list[str]:
        status = json.loads(self.ctl("cluster_status", "--formatter", "json"))
        return list(status.get("running_nodes", []))

    def kill(self) -> None:
        """SIGKILL the Erlang VM: the node dies as on a power cut."""
        pid = self.beam_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            # The wrapper script and anything the VM started (its process group).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)
            self.process = None
        deadline = time.monotonic() + 10
        while port_open(self.amqp_port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (the VM's SIGTERM handler), SIGKILL after `timeout`."""
        pid = self.beam_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pid = None
        # The node removes its pid file as it begins to stop: wait for the process itself.
        deadline = time.monotonic() + timeout
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            if pid is None:
                # No pid file (the VM died early, or never wrote it): stop its whole group.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            self.process = None


@dataclass
class RabbitCluster:
    data: Path
    size: int = 3
    prefix: str = "rabbit"
    amqp_base: int = DEFAULT_AMQP_BASE
    dist_base: int = DEFAULT_DIST_BASE
    nodes: list[Node] = field(init=False)

    def __post_init__(self) -> None:
        self.data = self.data.resolve()
        home = self.data / "home"
        self.nodes = [
            Node(
                index=i,
                name=f"{self.prefix}-{i}@localhost",
                amqp_port=self.amqp_base + i,
                dist_port=self.dist_base + i,
                base=self.data / f"{self.prefix}-{i}",
                home=home,
            )
            for i in range(1, self.size + 1)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def runner_file(self) -> Path:
        return self.data / "runner.pid"

    def clear_leftovers(self) -> list[str]:
        """Stop the nodes a runner that died left running; the names of those stopped.
        RuntimeError when the runner that started them is still alive."""
        try:
            runner = int(self.runner_file.read_text().strip())
        except (OSError, ValueError):
            runner = None
        if runner is not None and runner != os.getpid() and _alive(runner):
            raise RuntimeError(
                f"the cluster in {self.data} is in use by process {runner}; stop it, or run "
                f"`uv run --no-sync python scripts/rabbit_cluster.py down --data {self.data}`"
            )
        stopped = []
        for node in self.nodes:
            if node.beam_pid() is not None:
                log(f"stopping {node.name}, left running by a runner that died")
                node.stop()
                stopped.append(node.name)
        self.runner_file.unlink(missing_ok=True)
        return stopped

    def _ensure_cookie(self) -> None:
        home = self.data / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20).upper())
            cookie.chmod(0o400)

    def start(self) -> None:
        """Start every node (in parallel) and join nodes 2..n to node 1 where not yet joined."""
        ensure_installed()
        self._ensure_cookie()
        self.clear_leftovers()
        for node in self.nodes:
            if port_open(node.amqp_port) or port_open(node.dist_port):
                raise RuntimeError(f"port {node.amqp_port} or {node.dist_port} is taken")
        self.runner_file.write_text(f"{os.getpid()}\n")
        started = time.monotonic()
        for node in self.nodes:
            node.start()
        try:
            for node in self.nodes:
                node.await_startup()
            log(f"{self.size} nodes booted in {time.monotonic() - started:.1f}s")
            # The joins run side by side: each is a stop_app/start_app of seconds.
            with ThreadPoolExecutor(max_workers=self.size) as pool:
                for future in [pool.submit(self._join, node) for node in self.nodes[1:]]:
                    future.result()
            self.await_members()
        except BaseException:
            self.stop()
            raise
        log(f"{self.size} nodes up and clustered in {time.monotonic() - started:.1f}s")

    def _join(self, node: Node) -> None:
        seed = self.nodes[0]
        if seed.name in node.running_nodes():
            return  # joined on an earlier run: its data says so
        log(f"{node.name} joins {seed.name}")
        node.ctl("stop_app")
        node.ctl("join_cluster", seed.name)
        node.ctl("start_app", timeout=START_TIMEOUT)

    def await_members(self, timeout: float = START_TIMEOUT) -> None:
        """Until every node reports every node running."""
        names = {node.name for node in self.nodes}
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(set(node.running_nodes()) >= names for node in self.nodes):
                    return
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster not complete within {timeout}s")
            time.sleep(0.5)

    def restart_node(self, index: int) -> None:
        """Start a (killed) node again on its data; it rejoins the cluster by itself."""
        node = self.nodes[index]
        node.start()
        node.await_startup()
        self.await_members()

    def stop(self) -> None:
        # Last in, first out: node 1 stays up while the others leave, so none waits for it.
        for node in reversed(self.nodes):
            node.stop()
        self.runner_file.unlink(missing_ok=True)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down"))
    stack_data = Path(os.environ.get("STACK_DATA", ".data"))
    parser.add_argument("--data", type=Path, default=stack_data / "rabbit-cluster")
    args = parser.parse_args()
    cluster = RabbitCluster(args.data)
    if args.command == "down":
        cluster.stop()
        return 0
    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster.start()
    print("AMQP_URLS=" + ",".join(cluster.urls), flush=True)
    try:
        while not stop:
            time.sleep(0.5)
    finally:
        log("stopping the cluster")
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
