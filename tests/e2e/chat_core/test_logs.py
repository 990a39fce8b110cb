"""What the running services print: JSON objects only (library lines too), request ids that
follow a message from the REST call to the edge that delivers it, and never a token."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.support.clients import WsClient, rest_client
from tests.support.stack import ServiceProcess, Stack
from tests.support.users import new_user

pytestmark = pytest.mark.e2e


def log_lines(log_dir: Path) -> list[tuple[str, str]]:
    return [
        (path.name, line)
        for path in sorted(log_dir.glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
    ]


@pytest.fixture(scope="module")
def debug_edge(stack: Stack) -> Iterator[ServiceProcess]:
    # The edge's line per delivery is at debug: at info it cost more than the delivery.
    edge = stack.start("ws-edge", EDGE_ID=f"edge-debug-{stack.names[1][-6:]}", LOG_LEVEL="DEBUG")
    yield edge
    edge.stop()


async def test_request_id_follows_a_message_to_the_delivering_edge(
    debug_edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    edge = debug_edge
    alice, bob = new_user(), new_user()
    request_id = f"req-{uuid.uuid4().hex}"
    async with AsyncExitStack() as stack:
        bob_ws = await stack.enter_async_context(WsClient.for_user(edge.ws_url, bob))
        await bob_ws.heartbeat()
        rest = await stack.enter_async_context(rest_client(messaging.http_url, alice))
        created = await rest.post(
            "/conversations", json={"participantIds": [bob]}, headers={"X-Request-ID": request_id}
        )
        assert created.headers["x-request-id"] == request_id
        sent = await rest.post(
            f"/conversations/{created.json()['id']}/messages",
            json={"content": "traced", "messageType": "text"},
            headers={"X-Request-ID": request_id},
        )
        message_id = sent.json()["messageId"]
        await bob_ws.wait_event("new_message", messageId=message_id)
        generated = await rest.get("/conversations")
        assert generated.headers["x-request-id"], "one is generated when the caller sends none"

    messaging_lines = [json.loads(line) for line in messaging.log_text().splitlines()]
    assert any(line.get("request_id") == request_id for line in messaging_lines)

    def delivered() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in edge.log_text().splitlines()]
        return [
            line
            for line in lines
            if line.get("event") == "delivered" and line.get("request_id") == request_id
        ]

    # The edge logs right after writing the frame, so the line may trail the client's read.
    async with asyncio.timeout(5):
        while True:
            if any(line["message_id"] == message_id for line in delivered()):
                break
            await asyncio.sleep(0.05)


async def test_at_info_the_edge_writes_no_line_per_delivery(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob = new_user(), new_user()
    async with WsClient.for_user(edge.ws_url, bob) as bob_ws:
        await bob_ws.heartbeat()
        async with rest_client(messaging.http_url, alice) as rest:
            created = await rest.post("/conversations", json={"participantIds": [bob]})
            for number in range(3):
                sent = await rest.post(
                    f"/conversations/{created.json()['id']}/messages",
                    json={"content": f"quiet {number}", "messageType": "text"},
                )
                await bob_ws.wait_event("new_message", messageId=sent.json()["messageId"])
        await asyncio.sleep(0.2)
    lines = [json.loads(line) for line in edge.log_text().splitlines()]
    assert not [line for line in lines if line.get("event") == "delivered"]


async def test_every_line_is_json_and_no_token_is_logged(
    stack: Stack, edge: ServiceProcess, messaging: ServiceProcess, presence: ServiceProcess
) -> None:
    secret = f"tok-{uuid.uuid4().hex}"
    user = new_user()
    async with WsClient.for_user(edge.ws_url, user, token=secret) as refused:
        assert (await refused.wait_closed())[0] == 4001
    async with rest_client(messaging.http_url, None) as rest:
        response = await rest.get("/conversations", headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code == 401
    async with rest_client(presence.http_url, None) as rest:
        response = await rest.get(f"/presence/{user}", headers={"Authorization": secret})
        assert response.status_code == 401

    lines = log_lines(stack.log_dir)
    assert lines
    not_json = []
    for name, line in lines:
        try:
            parsed = json.loads(line)
        except ValueError:
            not_json.append(f"{name}: {line}")
            continue
        if not isinstance(parsed, dict):
            not_json.append(f"{name}: {line}")
    assert not not_json, "\n".join(not_json[:20])
    # Library lines come through as JSON too (uvicorn's startup lines, for one).
    assert any('"logger": "uvicorn.error"' in line for _, line in lines)
    leaked = [f"{name}: {line}" for name, line in lines if secret in line]
    assert not leaked, "\n".join(leaked)


async def test_routine_lines_carry_no_whole_phone_number(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    user, other = new_user(), new_user()
    async with WsClient.for_user(edge.ws_url, user) as client:
        await client.heartbeat()
        async with rest_client(messaging.http_url, user) as rest:
            created = await rest.post("/conversations", json={"participantIds": [other]})
            assert created.status_code == 201
    masked = f"{user[:3]}{'*' * (len(user) - 6)}{user[-3:]}"

    def lines_about_user() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in edge.log_text().splitlines()]
        return [line for line in lines if masked in json.dumps(line) or user in json.dumps(line)]

    # The edge logs the close after the client has gone: wait for it.
    async with asyncio.timeout(5):
        while True:
            if any(line.get("event") == "disconnected" for line in lines_about_user()):
                break
            await asyncio.sleep(0.05)
    routine = [line for line in lines_about_user() if line["level"] in ("debug", "info")]
    assert routine, "the edge logs each connection at info"
    assert not [line for line in routine if user in json.dumps(line)]
    assert user not in messaging.log_text()
