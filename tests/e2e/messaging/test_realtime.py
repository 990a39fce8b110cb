"""new_message, typing and read receipts between real WebSocket clients, across edges."""

import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from tests.support.clients import WsClient, rest_client
from tests.support.stack import ServiceProcess
from tests.support.users import new_user

pytestmark = pytest.mark.e2e

Json = dict[str, Any]

NEW_MESSAGE_FIELDS = {
    "event",
    "conversationId",
    "messageId",
    "senderId",
    "content",
    "messageType",
    "timestamp",
    "seq",
}


async def device(stack: AsyncExitStack, edge: ServiceProcess, user_id: str) -> WsClient:
    """A connected device whose user is bound for delivery (the heartbeat round-trip
    proves the edge finished admitting it)."""
    client = await stack.enter_async_context(WsClient.for_user(edge.ws_url, user_id))
    await client.heartbeat()
    return client


async def conversation(client: httpx.AsyncClient, *others: str, name: str | None = "room") -> str:
    response = await client.post(
        "/conversations", json={"participantIds": list(others), "name": name}
    )
    assert response.status_code in (200, 201), response.text
    conversation_id: str = response.json()["id"]
    return conversation_id


async def send(client: httpx.AsyncClient, conversation_id: str, **body: str) -> Json:
    response = await client.post(
        f"/conversations/{conversation_id}/messages", json={"messageType": "text", **body}
    )
    assert response.status_code == 201, response.text
    sent: Json = response.json()
    return sent


def is_typing(event: Json) -> bool:
    return event.get("event") == "typing"


def as_event(sent: Json) -> Json:
    event = {key: value for key, value in sent.items() if key != "clientMessageId"}
    return {"event": "new_message", **event}


@pytest.mark.parametrize("message_type", ["text", "image", "video", "audio"])
async def test_new_message_reaches_every_device_including_the_senders_other_one(
    edge: ServiceProcess, messaging: ServiceProcess, message_type: str
) -> None:
    alice, bob = new_user(), new_user()
    async with AsyncExitStack() as stack:
        bob_phone = await device(stack, edge, bob)
        bob_laptop = await device(stack, edge, bob)
        alice_laptop = await device(stack, edge, alice)
        async with rest_client(messaging.http_url, alice) as client:
            cid = await conversation(client, bob, name=None)
            content = f"https://cdn.example/{message_type}/1" if message_type != "text" else "hi"
            sent = await send(client, cid, content=content, messageType=message_type)
        for socket in (bob_phone, bob_laptop, alice_laptop):
            received = await socket.wait_event("new_message", messageId=sent["messageId"])
            assert set(received) == NEW_MESSAGE_FIELDS
            assert received == as_event(sent)
            assert received["messageType"] == message_type


async def test_delivery_spans_two_edge_processes(
    edge: ServiceProcess, second_edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    async with AsyncExitStack() as stack:
        bob_on_a = await device(stack, edge, bob)
        bob_on_b = await device(stack, second_edge, bob)
        alice_on_b = await device(stack, second_edge, alice)
        carol_on_a = await device(stack, edge, carol)
        async with rest_client(messaging.http_url, alice) as client:
            cid = await conversation(client, bob, carol)
            sent = await send(client, cid, content="across edges")
        for socket in (bob_on_a, bob_on_b, alice_on_b, carol_on_a):
            received = await socket.wait_event("new_message", messageId=sent["messageId"])
            assert received == as_event(sent)


async def test_a_repeated_client_message_id_is_delivered_once(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob = new_user(), new_user()
    async with AsyncExitStack() as stack:
        bob_phone = await device(stack, edge, bob)
        async with rest_client(messaging.http_url, alice) as client:
            cid = await conversation(client, bob)
            first = await send(client, cid, content="once", clientMessageId="tap-42")
            again = await send(client, cid, content="once", clientMessageId="tap-42")
            history = (await client.get(f"/conversations/{cid}/messages")).json()["items"]
        assert again == first
        assert [m["messageId"] for m in history] == [first["messageId"]]
        await bob_phone.wait_event("new_message", messageId=first["messageId"])
        await bob_phone.assert_nothing(lambda e: e.get("event") == "new_message", within=1.5)


async def test_the_same_client_message_id_from_another_sender_is_another_message(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob = new_user(), new_user()
    async with AsyncExitStack() as stack:
        bob_phone = await device(stack, edge, bob)
        async with (
            rest_client(messaging.http_url, alice) as a,
            rest_client(messaging.http_url, bob) as b,
        ):
            cid = await conversation(a, bob)
            from_alice = await send(a, cid, content="a", clientMessageId="1")
            from_bob = await send(b, cid, content="b", clientMessageId="1")
        assert from_alice["messageId"] != from_bob["messageId"]
        for sent in (from_alice, from_bob):
            await bob_phone.wait_event("new_message", messageId=sent["messageId"])


async def test_typing_reaches_the_others_only_and_is_throttled(
    edge: ServiceProcess, second_edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    async with AsyncExitStack() as stack:
        alice_phone = await device(stack, edge, alice)
        alice_laptop = await device(stack, second_edge, alice)
        bob_phone = await device(stack, edge, bob)
        carol_phone = await device(stack, second_edge, carol)
        async with rest_client(messaging.http_url, alice) as client:
            cid = await conversation(client, bob, carol)
        typing = {"event": "typing", "conversationId": cid}

        started = time.monotonic()
        await alice_phone.send(typing)
        for other in (bob_phone, carol_phone):
            received = await other.wait_event("typing", conversationId=cid)
            assert received == {"event": "typing", "conversationId": cid, "userId": alice}
        for _ in range(5):
            await alice_phone.send(typing)
        # Within the throttle interval (1 s) the burst reaches nobody, and the typist's own
        # devices never hear themselves.
        await bob_phone.assert_nothing(is_typing, within=0.6)
        await alice_laptop.assert_nothing(is_typing, within=0.1)
        await alice_phone.assert_nothing(is_typing, within=0.1)

        async with asyncio.timeout(5):
            while True:
                await alice_phone.send(typing)
                try:
                    await bob_phone.wait_event("typing", timeout=0.2, userId=alice)
                    break
                except TimeoutError:
                    continue
        assert time.monotonic() - started >= 0.9


async def test_typing_from_an_outsider_is_refused_and_nobody_hears_it(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob, mallory = new_user(), new_user(), new_user()
    async with AsyncExitStack() as stack:
        alice_phone = await device(stack, edge, alice)
        bob_phone = await device(stack, edge, bob)
        mallory_phone = await device(stack, edge, mallory)
        async with rest_client(messaging.http_url, alice) as client:
            cid = await conversation(client, bob)
        await mallory_phone.send({"event": "typing", "conversationId": cid})
        error = await mallory_phone.wait_event("error")
        assert set(error) == {"event", "message"}
        assert cid in error["message"]
        for member in (alice_phone, bob_phone):
            await member.assert_nothing(is_typing, within=1.0)


async def test_read_receipts_go_to_the_others_and_are_persisted(
    edge: ServiceProcess, second_edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    async with AsyncExitStack() as stack:
        alice_phone = await device(stack, edge, alice)
        alice_laptop = await device(stack, second_edge, alice)
        bob_phone = await device(stack, edge, bob)
        bob_laptop = await device(stack, second_edge, bob)
        carol_phone = await device(stack, edge, carol)
        async with rest_client(messaging.http_url, alice) as client:
            cid = await conversation(client, bob, carol)
            first = await send(client, cid, content="one")
            second = await send(client, cid, content="two")
            await bob_phone.send(
                {"event": "message_read", "conversationId": cid, "messageId": second["messageId"]}
            )
            expected = {
                "event": "message_read",
                "conversationId": cid,
                "messageId": second["messageId"],
                "userId": bob,
            }
            # The others, and the reader's own other devices (reading on a phone clears the
            # laptop's badge); never back to the socket the receipt came from.
            for other in (alice_phone, alice_laptop, carol_phone, bob_laptop):
                assert await other.wait_event("message_read") == expected
            await bob_phone.assert_nothing(lambda e: e.get("event") == "message_read", within=0.5)
            read_by = [
                (await client.get(f"/conversations/{cid}/messages/{m['messageId']}")).json()[
                    "readBy"
                ]
                for m in (first, second)
            ]
        assert [[r["userId"] for r in readers] for readers in read_by] == [[bob], [bob]]


async def test_a_receipt_for_a_message_outside_the_conversation_is_an_error(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob, mallory = new_user(), new_user(), new_user()
    async with AsyncExitStack() as stack:
        alice_phone = await device(stack, edge, alice)
        bob_phone = await device(stack, edge, bob)
        mallory_phone = await device(stack, edge, mallory)
        async with rest_client(messaging.http_url, alice) as client:
            here = await conversation(client, bob, name="here")
            there = await conversation(client, bob, name="there")
            stray = await send(client, there, content="elsewhere")
            sent = await send(client, here, content="here")
        await bob_phone.send(
            {"event": "message_read", "conversationId": here, "messageId": stray["messageId"]}
        )
        error = await bob_phone.wait_event("error")
        assert stray["messageId"] in error["message"]
        await mallory_phone.send(
            {"event": "message_read", "conversationId": here, "messageId": sent["messageId"]}
        )
        refused = await mallory_phone.wait_event("error")
        assert here in refused["message"]
        await alice_phone.assert_nothing(lambda e: e.get("event") == "message_read", within=1.0)
