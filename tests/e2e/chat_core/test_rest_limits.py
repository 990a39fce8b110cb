"""REST limits over real HTTP: per-user rates (429 + Retry-After), the body cap (413), and
CORS for the allowed origins, on messaging and presence processes of their own with small
values set through their settings."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import FAST_PRESENCE
from tests.support.clients import rest_client
from tests.support.stack import ServiceProcess, Stack
from tests.support.users import new_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ORIGIN = "https://chat.example"
SMALL = {
    "SEND_RATE_PER_SECOND": "2",
    "SEND_BURST": "3",
    "CONVERSATION_RATE_PER_SECOND": "1",
    "CONVERSATION_BURST": "1",
    "READ_RATE_PER_SECOND": "1",
    "READ_BURST": "3",
    "MAX_BODY_BYTES": "2048",
    "ALLOWED_ORIGINS": ORIGIN,
}


@pytest.fixture(scope="module")
def services(
    amqp_url: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    own = Stack(
        amqp_url,
        mongo_url,
        tmp_path_factory.mktemp("rest-limit-logs"),
        extra_env={**FAST_PRESENCE, **SMALL},
    )
    try:
        yield own.start("messaging"), own.start("presence")
    finally:
        own.close()


@pytest.fixture
def messaging(services: tuple[ServiceProcess, ServiceProcess]) -> ServiceProcess:
    return services[0]


@pytest.fixture
def presence(services: tuple[ServiceProcess, ServiceProcess]) -> ServiceProcess:
    return services[1]


@pytest.fixture
async def alice(messaging: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with rest_client(messaging.http_url, new_user()) as client:
        yield client


async def conversation_with(client: httpx.AsyncClient, other: str) -> str:
    response = await client.post("/conversations", json={"participantIds": [other]})
    assert response.status_code == 201, response.text
    conversation_id: str = response.json()["id"]
    return conversation_id


def message(content: str = "hi") -> dict[str, Any]:
    return {"content": content, "messageType": "text"}


async def test_sends_over_the_rate_get_429_with_retry_after(
    messaging: ServiceProcess, alice: httpx.AsyncClient
) -> None:
    conversation = await conversation_with(alice, new_user())
    path = f"/conversations/{conversation}/messages"
    statuses = [(await alice.post(path, json=message())).status_code for _ in range(3)]
    assert statuses == [201, 201, 201]
    refused = await alice.post(path, json=message())
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "too many messages sent" in refused.json()["detail"]
    # Reads have a bucket of their own, and another user's sends are not held up by this one.
    assert (await alice.get(path)).status_code == 200
    async with rest_client(messaging.http_url, new_user()) as bob:
        other = await conversation_with(bob, new_user())
        sent = await bob.post(f"/conversations/{other}/messages", json=message())
        assert sent.status_code == 201
    # Two tokens a second: back within the Retry-After it was given.
    await asyncio.sleep(int(refused.headers["Retry-After"]))
    assert (await alice.post(path, json=message())).status_code == 201


async def test_reads_over_the_rate_get_429_with_retry_after(
    messaging: ServiceProcess, alice: httpx.AsyncClient
) -> None:
    conversation = await conversation_with(alice, new_user())
    paths = ["/conversations", f"/conversations/{conversation}/messages", "/sync"]
    statuses = [(await alice.get(path)).status_code for path in paths]
    assert statuses == [200, 200, 200]
    refused = await alice.get("/conversations")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "too many reads" in refused.json()["detail"]
    # Sends are counted apart, and so is every other user.
    path = f"/conversations/{conversation}/messages"
    assert (await alice.post(path, json=message())).status_code == 201
    async with rest_client(messaging.http_url, new_user()) as bob:
        assert (await bob.get("/conversations")).status_code == 200
    await asyncio.sleep(int(refused.headers["Retry-After"]))
    assert (await alice.get("/conversations")).status_code == 200


async def test_creating_conversations_too_fast_gets_429(alice: httpx.AsyncClient) -> None:
    await conversation_with(alice, new_user())
    refused = await alice.post("/conversations", json={"participantIds": [new_user()]})
    assert refused.status_code == 429
    assert "too many conversations created" in refused.json()["detail"]
    assert refused.headers["Retry-After"] == "1"


async def test_a_body_over_the_cap_is_413(alice: httpx.AsyncClient) -> None:
    conversation = await conversation_with(alice, new_user())
    path = f"/conversations/{conversation}/messages"
    too_big = await alice.post(path, json=message("x" * 3000))
    assert too_big.status_code == 413
    assert "2048 bytes" in too_big.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'", "messageType": "text"}'

    # Without a Content-Length (chunked), it is counted as it arrives.
    chunked = await alice.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    # A small body is untouched by the cap.
    assert (await alice.post(path, json=message("small"))).status_code == 201


@pytest.mark.parametrize("service", ["messaging", "presence"])
async def test_cors_preflight_allows_the_configured_origin(
    service: str, services: tuple[ServiceProcess, ServiceProcess]
) -> None:
    process = services[0] if service == "messaging" else services[1]
    path, method = ("/conversations", "POST") if service == "messaging" else ("/presence", "GET")
    async with httpx.AsyncClient(base_url=process.http_url) as http:
        preflight = await http.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization, content-type, x-request-id",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        allowed = preflight.headers["access-control-allow-headers"].lower()
        for header in ("authorization", "content-type", "x-request-id"):
            assert header in allowed
        assert method in preflight.headers["access-control-allow-methods"]

        refused = await http.options(
            path,
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": method},
        )
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers


async def test_cross_origin_answers_expose_retry_after(
    messaging: ServiceProcess, alice: httpx.AsyncClient
) -> None:
    # A page must be able to read Retry-After on a 429, so every answer exposes it.
    await conversation_with(alice, new_user())
    refused = await alice.post(
        "/conversations", json={"participantIds": [new_user()]}, headers={"Origin": ORIGIN}
    )
    assert refused.status_code == 429
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert "retry-after" in refused.headers["access-control-expose-headers"].lower()
    other = await alice.get("/conversations", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200  # CORS is the browser's to enforce; no header given
    assert "access-control-allow-origin" not in other.headers
