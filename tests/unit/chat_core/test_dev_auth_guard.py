"""Dev auth (the phone number is the credential) serves loopback only unless a person says
otherwise with ALLOW_DEV_AUTH_ON_NETWORK=true."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from chat_launcher import free_port

from chat_core.server import is_loopback, listen_host
from chat_core.settings import AuthMode, ServiceSettings

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "192.0.2.1", "no-such.invalid"])
def test_everything_else_is_a_network(host: str) -> None:
    assert not is_loopback(host)


def test_dev_auth_on_a_network_interface_exits_with_the_way_out() -> None:
    settings = ServiceSettings(auth_mode=AuthMode.DEV)
    with pytest.raises(SystemExit) as exited:
        listen_host("ws-edge", "0.0.0.0", settings)
    message = str(exited.value.code)
    assert "AUTH_MODE=dev" in message
    assert "ALLOW_DEV_AUTH_ON_NETWORK=true" in message
    assert "0.0.0.0" in message


def test_the_host_setting_is_checked_as_well_as_the_flag() -> None:
    with pytest.raises(SystemExit):
        listen_host("presence", None, ServiceSettings(auth_mode=AuthMode.DEV, host="0.0.0.0"))


def test_loopback_firebase_and_the_explicit_flag_start() -> None:
    assert listen_host("ws-edge", None, ServiceSettings(auth_mode=AuthMode.DEV)) == "127.0.0.1"
    firebase = ServiceSettings(auth_mode=AuthMode.FIREBASE, firebase_project_id="p")
    assert listen_host("ws-edge", "0.0.0.0", firebase) == "0.0.0.0"
    allowed = ServiceSettings(auth_mode=AuthMode.DEV, allow_dev_auth_on_network=True)
    assert listen_host("ws-edge", "0.0.0.0", allowed) == "0.0.0.0"


@pytest.mark.parametrize("program", ["ws-edge", "messaging", "presence"])
def test_console_script_refuses_before_it_listens(program: str) -> None:
    # Unreachable broker and database: should the guard ever let it through, the service
    # fails its start-up instead of touching anyone's state, and the assertions say so.
    env = {
        **os.environ,
        "AUTH_MODE": "dev",
        "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
        "MONGO_URL": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500",
        "MONGO_DB": "test_dev_auth_guard",
        "BROKER_PREFIX": "test-dev-auth-guard",
    }
    env.pop("ALLOW_DEV_AUTH_ON_NETWORK", None)
    result = subprocess.run(
        [str(BIN / program), "--host", "0.0.0.0", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"{program}: refusing to listen on '0.0.0.0' with AUTH_MODE=dev" in result.stderr
