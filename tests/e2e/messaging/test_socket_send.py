"""send_message over a real socket: stored, announced to every device, acknowledged to the
sending socket, idempotent with REST sends, and bad ones answered with an error that names
the clientMessageId."""

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.e2e.messaging.test_realtime import conversation, device, send
from tests.support.clients import WsClient, rest_client
from tests.support.stack import ServiceProcess
from tests.support.users import new_user

pytestmark = pytest.mark.e2e

Json = dict[str, Any]


def frame(conversation_id: str, key: str, content: str = "over the socket") -> Json:
    return {
        "event": "send_message",
        "conversationId": conversation_id,
        "content": content,
        "messageType": "text",
        "clientMessageId": key,
    }


async def test_a_socket_send_is_acked_to_its_socket_and_reaches_every_device(
    edge: ServiceProcess, second_edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob = new_user(), new_user()
    async with AsyncExitStack() as stack:
        phone = await device(stack, edge, alice)
        laptop = await device(stack, second_edge, alice)
        bobs = await device(stack, edge, bob)
        async with rest_client(messaging.http_url, alice) as client:
            cid = await conversation(client, bob, name=None)
        await phone.send(frame(cid, "tap-1"))
        ack = await phone.wait_event("message_ack", timeout=10)
        assert set(ack) == {"event", "clientMessageId", "messageId", "seq", "timestamp"}
        assert (ack["clientMessageId"], ack["seq"]) == ("tap-1", 1)
        for socket in (phone, laptop, bobs):
            got = await socket.wait_event("new_message", messageId=ack["messageId"])
            assert (got["content"], got["seq"], got["senderId"]) == ("over the socket", 1, alice)
            assert got["timestamp"] == ack["timestamp"]
        await laptop.assert_nothing(lambda e: e.get("event") == "message_ack")

        async with rest_client(messaging.http_url, bob) as client:
            history = (await client.get(f"/conversations/{cid}/messages")).json()["items"]
        assert [(m["messageId"], m["clientMessageId"]) for m in history] == [
            (ack["messageId"], "tap-1")
        ]


async def test_a_repeated_client_message_id_is_acked_with_the_first_and_delivered_once(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob = new_user(), new_user()
    async with AsyncExitStack() as stack:
        phone = await device(stack, edge, alice)
        bobs = await device(stack, edge, bob)
        async with rest_client(messaging.http_url, alice) as client:
            cid = await conversation(client, bob)
            await phone.send(frame(cid, "k"))
            first = await phone.wait_event("message_ack", timeout=10)
            await phone.send(frame(cid, "k", "changed"))
            again = await phone.wait_event("message_ack", timeout=10)
            # Whichever way it came: the REST send of the same key is the same message.
            over_rest = await send(client, cid, content="rest", clientMessageId="k")
        assert again == first
        assert over_rest["messageId"] == first["messageId"]
        delivered = await bobs.wait_event("new_message", messageId=first["messageId"])
        assert delivered["content"] == "over the socket"
        await bobs.assert_nothing(lambda e: e.get("event") == "new_message")


async def test_socket_sends_to_one_conversation_keep_their_order(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob = new_user(), new_user()
    async with AsyncExitStack() as stack:
        phone = await device(stack, edge, alice)
        bobs = await device(stack, edge, bob)
        async with rest_client(messaging.http_url, alice) as client:
            cid = await conversation(client, bob)
        for n in range(20):
            await phone.send(frame(cid, f"burst-{n}", f"#{n}"))
        received = [await bobs.wait_event("new_message", timeout=10) for _ in range(20)]
    assert [m["content"] for m in received] == [f"#{n}" for n in range(20)]
    assert [m["seq"] for m in received] == list(range(1, 21))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"content": "   "}, "content must not be empty"),
        ({"conversationId": "0" * 24}, "not found"),
        ({"content": "x" * 4001}, "longer than 4000"),
    ],
)
async def test_a_refused_socket_send_gets_an_error_naming_its_client_message_id(
    edge: ServiceProcess, messaging: ServiceProcess, change: Json, reason: str
) -> None:
    alice, bob = new_user(), new_user()
    async with (
        WsClient.for_user(edge.ws_url, alice) as phone,
        rest_client(messaging.http_url, alice) as client,
    ):
        await phone.heartbeat()
        cid = await conversation(client, bob)
        await phone.send({**frame(cid, "bad-1"), **change})
        error = await phone.wait_event("error", timeout=10)
        assert error["clientMessageId"] == "bad-1"
        assert reason in error["message"]
        await phone.heartbeat()  # the socket lives on


async def test_an_outsider_cannot_send_into_a_conversation(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob, mallory = new_user(), new_user(), new_user()
    async with AsyncExitStack() as stack:
        bobs = await device(stack, edge, bob)
        intruder = await device(stack, edge, mallory)
        async with rest_client(messaging.http_url, alice) as client:
            cid = await conversation(client, bob)
        await intruder.send(frame(cid, "sneak"))
        error = await intruder.wait_event("error", timeout=10)
        assert error["clientMessageId"] == "sneak"
        await asyncio.sleep(0.2)
        await bobs.assert_nothing(lambda e: e.get("event") == "new_message")


async def test_a_send_message_frame_missing_its_client_message_id_is_invalid(
    edge: ServiceProcess,
) -> None:
    async with WsClient.for_user(edge.ws_url, new_user()) as phone:
        await phone.heartbeat()
        await phone.send(
            {
                "event": "send_message",
                "conversationId": "0" * 24,
                "content": "x",
                "messageType": "text",
            }
        )
        error = await phone.wait_event("error")
        assert "clientMessageId" in error["message"]
