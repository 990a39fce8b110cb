"""An edge in AUTH_MODE=firebase admits Firebase ID tokens and nothing else."""

from collections.abc import Iterator

import pytest

from tests.support.clients import WsClient
from tests.support.firebase import (
    PROJECT_ID,
    SigningKey,
    make_signing_key,
    serve_certificates,
    sign_id_token,
)
from tests.support.stack import ServiceProcess, Stack


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return make_signing_key()


@pytest.fixture(scope="module")
def firebase_edge(stack: Stack, signing_key: SigningKey) -> Iterator[ServiceProcess]:
    with serve_certificates(signing_key) as cert_url:
        edge = stack.start(
            "ws-edge",
            EDGE_ID="edge-firebase",
            AUTH_MODE="firebase",
            FIREBASE_PROJECT_ID=PROJECT_ID,
            FIREBASE_CERT_URL=cert_url,
        )
        yield edge
        edge.stop()


async def test_a_valid_id_token_for_the_path_user_is_admitted(
    firebase_edge: ServiceProcess, signing_key: SigningKey
) -> None:
    token = sign_id_token(signing_key, "uid-alice")
    async with WsClient.for_user(firebase_edge.ws_url, "uid-alice", token) as client:
        await client.heartbeat()


async def test_a_token_for_another_uid_closes_4002(
    firebase_edge: ServiceProcess, signing_key: SigningKey
) -> None:
    token = sign_id_token(signing_key, "uid-bob")
    async with WsClient.for_user(firebase_edge.ws_url, "uid-alice", token) as client:
        assert (await client.wait_closed())[0] == 4002


@pytest.mark.parametrize("token", ["", "+84912345678", "forged"])
async def test_dev_tokens_and_forgeries_close_4001(
    firebase_edge: ServiceProcess, token: str
) -> None:
    if token == "forged":
        token = sign_id_token(make_signing_key(), "uid-alice")
    async with WsClient.for_user(firebase_edge.ws_url, "uid-alice", token) as client:
        assert (await client.wait_closed())[0] == 4001


def test_the_edge_refuses_to_start_with_the_auth_emulator_variable(stack: Stack) -> None:
    with pytest.raises(RuntimeError, match="exited early"):
        stack.start(
            "ws-edge",
            EDGE_ID="edge-emulated",
            AUTH_MODE="firebase",
            FIREBASE_PROJECT_ID=PROJECT_ID,
            FIREBASE_AUTH_EMULATOR_HOST="127.0.0.1:9099",
        )
