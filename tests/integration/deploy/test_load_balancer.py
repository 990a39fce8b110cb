"""The load balancer refuses the internal endpoints (chat_core.internal) on every public
frontend: deploy/haproxy.cfg and `make run-cluster`'s generated config, each run in a real
HAProxy in front of a backend that would answer anything."""

import http.server
import importlib.util
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_launcher import free_port

from chat_core.internal import INTERNAL_PATHS

REPO = Path(__file__).resolve().parents[3]
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

pytestmark = pytest.mark.skipif(
    not Path(HAPROXY).exists(), reason="haproxy is not installed (scripts/ensure_haproxy.sh)"
)

# Spellings a client might try to slip an internal path past a literal match.
DISGUISED = ("/%6Detrics", "/metrics?x=1", "/docs/oauth2-redirect", "/openapi.json#x")
PUBLIC = ("/readyz", "/conversations", "/ws/+84912345678")


class _AnswerAnything(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"backend"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AnswerAnything)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def run_haproxy(config: str, tmp_path: Path, front: int) -> subprocess.Popen[bytes]:
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(path)], capture_output=True, timeout=30)
    assert check.returncode == 0, check.stderr.decode() + config
    process = subprocess.Popen([HAPROXY, "-db", "-f", str(path)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", front), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("haproxy did not listen")


def status(port: int, path: str) -> int:
    try:
        with _opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def assert_refuses_internal_paths(port: int) -> None:
    # The backend answers 200 to anything once HAProxy has seen it healthy.
    deadline = time.monotonic() + 15
    while status(port, "/readyz") != 200:
        assert time.monotonic() < deadline, "backend never became healthy"
        time.sleep(0.2)
    for path in (*INTERNAL_PATHS, *DISGUISED):
        assert status(port, path) == 403, path
    for path in PUBLIC:
        assert status(port, path) == 200, path


def local_copy_of_deploy_config(backend: int, fronts: dict[str, int]) -> str:
    """deploy/haproxy.cfg with Docker's DNS discovery replaced by the local backend."""
    config = (REPO / "deploy/haproxy.cfg").read_text()
    config = re.sub(r"^resolvers docker\n(?:    .*\n)+", "", config, flags=re.M)
    config = config.replace("init-addr none resolvers docker ", "")
    config = re.sub(r"maxconn \d+", "maxconn 1000", config)
    config = re.sub(
        r"server-template (\S+) \d+ \S+ check", rf"server \1 127.0.0.1:{backend} check", config
    )
    for public, port in fronts.items():
        config = config.replace(f"bind :{public}\n", f"bind 127.0.0.1:{port}\n")
    assert "bind :" not in config.replace("bind :8404", ""), "a frontend kept its public port"
    return config.replace("bind :8404", f"bind 127.0.0.1:{free_port()}")


@pytest.mark.parametrize("public", ["8000", "8001", "8002"])
def test_deploy_config_refuses_internal_paths(backend: int, tmp_path: Path, public: str) -> None:
    fronts = {port: free_port() for port in ("8000", "8001", "8002")}
    process = run_haproxy(local_copy_of_deploy_config(backend, fronts), tmp_path, fronts[public])
    try:
        assert_refuses_internal_paths(fronts[public])
    finally:
        process.terminate()
        process.wait(10)


def test_run_cluster_config_refuses_internal_paths(backend: int, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("run_cluster", REPO / "scripts/run_cluster.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config: str = module.haproxy_config()
    front = free_port()
    config = config.replace("bind 127.0.0.1:8000\n", f"bind 127.0.0.1:{front}\n")
    config = re.sub(r"127\.0\.0\.1:80[1-3][0-9] check", f"127.0.0.1:{backend} check", config)
    config = re.sub(r"^    bind 127\.0\.0\.1:800[12]\n", "", config, flags=re.M)
    process = run_haproxy(config, tmp_path, front)
    try:
        assert_refuses_internal_paths(front)
    finally:
        process.terminate()
        process.wait(10)
