"""A messaging process killed between the message write and its publish loses no new_message."""

import httpx
import pytest

from messaging.faults import CRASH_EXIT_STATUS
from tests.support.clients import WsClient, rest_client
from tests.support.stack import ServiceProcess, Stack
from tests.support.users import new_user

pytestmark = pytest.mark.e2e


async def test_a_worker_killed_after_the_write_still_delivers_the_message(
    stack: Stack, edge: ServiceProcess
) -> None:
    alice, bob = new_user(), new_user()
    doomed = stack.start("messaging", FAULT_CRASH_AFTER_WRITE="true")
    survivor: ServiceProcess | None = None
    try:
        async with WsClient.for_user(edge.ws_url, bob) as bob_phone:
            await bob_phone.heartbeat()
            async with rest_client(doomed.http_url, alice) as client:
                created = await client.post("/conversations", json={"participantIds": [bob]})
                cid = created.json()["id"]
                with pytest.raises(httpx.TransportError):
                    await client.post(
                        f"/conversations/{cid}/messages",
                        json={"content": "survive", "messageType": "text", "clientMessageId": "k1"},
                    )
            assert doomed.process.wait(10) == CRASH_EXIT_STATUS
            await bob_phone.assert_nothing(lambda e: e.get("event") == "new_message", within=0.5)

            survivor = stack.start(
                "messaging", RELAY_INTERVAL_SECONDS="0.2", OUTBOX_MIN_AGE_SECONDS="0.5"
            )
            received = await bob_phone.wait_event("new_message", timeout=15, conversationId=cid)
            assert received["content"] == "survive"
            assert received["senderId"] == alice

            async with rest_client(survivor.http_url, alice) as client:
                history = (await client.get(f"/conversations/{cid}/messages")).json()["items"]
                retried = await client.post(
                    f"/conversations/{cid}/messages",
                    json={"content": "survive", "messageType": "text", "clientMessageId": "k1"},
                )
        assert [m["messageId"] for m in history] == [received["messageId"]]
        assert retried.status_code == 201
        assert retried.json()["messageId"] == received["messageId"]
    finally:
        doomed.stop()
        if survivor is not None:
            survivor.stop()
