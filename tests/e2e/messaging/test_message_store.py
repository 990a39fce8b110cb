"""The seq-ordered store through the public API: order, paging, chat list, sync and resume."""

import asyncio
from contextlib import AsyncExitStack
from urllib.parse import quote

import httpx
import pytest

from messaging.faults import CRASH_EXIT_STATUS
from tests.support.clients import Event, WsClient, rest_client
from tests.support.rest import create, send
from tests.support.stack import ServiceProcess, Stack
from tests.support.users import new_user

pytestmark = pytest.mark.e2e


def resume_url(edge: ServiceProcess, user_id: str, since: str) -> str:
    return f"{edge.ws_url}/ws/{user_id}?token={user_id}&since={quote(since)}"


async def replay_until_done(socket: WsClient, timeout: float = 10.0) -> tuple[list[Event], Event]:
    """The frames a resuming socket gets before `replay_done`, and `replay_done` itself."""
    before: list[Event] = []
    while True:
        event = await socket.next_event(timeout)
        if event.get("event") == "replay_done":
            return before, event
        before.append(event)


@pytest.mark.timeout(180)
async def test_two_messaging_processes_give_one_conversation_seqs_1_to_50(
    stack: Stack, messaging: ServiceProcess
) -> None:
    other = stack.start("messaging")
    try:
        alice, bob = new_user(), new_user()
        async with (
            rest_client(messaging.http_url, alice) as a,
            rest_client(other.http_url, alice) as b,
        ):
            cid = (await create(a, bob, name="busy"))["id"]
            sent = await asyncio.gather(*(send(a if n % 2 else b, cid, f"m{n}") for n in range(50)))
            page = (await a.get(f"/conversations/{cid}/messages?afterSeq=0&limit=200")).json()
    finally:
        other.stop()
    assert sorted(m["seq"] for m in sent) == list(range(1, 51))
    assert [m["seq"] for m in page["items"]] == list(range(1, 51))
    assert {m["messageId"] for m in page["items"]} == {m["messageId"] for m in sent}
    assert page["hasMore"] is False


async def test_after_seq_pages_forward_and_before_pages_back(messaging: ServiceProcess) -> None:
    alice = new_user()
    async with rest_client(messaging.http_url, alice) as client:
        cid = (await create(client, new_user()))["id"]
        sent = [await send(client, cid, f"m{n}") for n in range(7)]
        path = f"/conversations/{cid}/messages"
        forward = (await client.get(path, params={"afterSeq": 2, "limit": 3})).json()
        tail = (await client.get(path, params={"afterSeq": 5, "limit": 3})).json()
        newest = (await client.get(path, params={"limit": 3})).json()
        older = (
            await client.get(path, params={"limit": 3, "before": newest["items"][-1]["messageId"]})
        ).json()
        both = await client.get(path, params={"afterSeq": 1, "before": sent[3]["messageId"]})
    assert [m["seq"] for m in forward["items"]] == [3, 4, 5]
    assert forward["hasMore"] is True
    assert [m["content"] for m in tail["items"]] == ["m5", "m6"]
    assert tail["hasMore"] is False
    assert [m["seq"] for m in newest["items"]] == [7, 6, 5]
    assert [m["seq"] for m in older["items"]] == [4, 3, 2]
    assert older["hasMore"] is True
    assert both.status_code == 422


async def written_behind(client: httpx.AsyncClient, conversation_id: str) -> None:
    """Wait until the chat list shows the conversation's latest send as its newest activity."""
    async with asyncio.timeout(5):
        while True:
            first = (await client.get("/conversations", params={"limit": 1})).json()["items"]
            if first and first[0]["id"] == conversation_id:
                return
            await asyncio.sleep(0.02)


async def test_the_chat_list_pages_by_cursor_newest_activity_first(
    messaging: ServiceProcess,
) -> None:
    alice = new_user()
    async with rest_client(messaging.http_url, alice) as client:
        created = [(await create(client, new_user()))["id"] for _ in range(5)]
        # Activity reorders: the first conversation becomes the most recent, once the
        # send's write-behind is flushed (OUTBOX_FLUSH_INTERVAL_SECONDS).
        await send(client, created[0], "bump")
        await written_behind(client, created[0])
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/conversations", params=params)).json()
            seen.extend(item["id"] for item in page["items"])
            cursor = page["nextCursor"]
            if cursor is None:
                break
        bad = await client.get("/conversations", params={"cursor": "!!not-a-cursor"})
    assert seen == [created[0], *reversed(created[1:])]
    assert bad.status_code == 422


async def test_sync_returns_what_was_missed_in_every_conversation_then_nothing_new(
    messaging: ServiceProcess,
) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    async with (
        rest_client(messaging.http_url, alice) as a,
        rest_client(messaging.http_url, bob) as b,
    ):
        one = (await create(a, bob))["id"]
        seen = await send(a, one, "seen")
        two = (await create(b, alice, carol, name="later"))["id"]
        missed = [await send(b, one, "m1"), await send(b, two, "m2"), await send(b, one, "m3")]
        first = (await a.get("/sync", params={"since": seen["messageId"]})).json()
        second = (await a.get("/sync", params={"since": first["nextSince"]})).json()
        fresh = (await a.get("/sync")).json()
        bad = await a.get("/sync", params={"since": "nonsense"})
    ids = [m["messageId"] for m in first["items"]]
    assert set(ids) == {m["messageId"] for m in missed}
    assert [m["seq"] for m in first["items"] if m["conversationId"] == one] == [2, 3]
    assert [c["id"] for c in first["conversations"]] == [two]
    assert first["hasMore"] is False
    # Duplicates are allowed, gaps never: nothing was sent since, so nothing new comes.
    assert {m["messageId"] for m in second["items"]} <= set(ids)
    assert {m["conversationId"]: m["seq"] for m in fresh["items"]} == {one: 3, two: 1}
    assert bad.status_code == 422


async def test_a_resume_replays_the_gap_then_goes_live_without_duplicates(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob = new_user(), new_user()
    async with rest_client(messaging.http_url, bob) as b:
        cid = (await create(b, alice))["id"]
        async with WsClient.for_user(edge.ws_url, alice) as phone:
            await phone.heartbeat()
            last_seen = await send(b, cid, "before sleep")
            await phone.wait_event("new_message", messageId=last_seen["messageId"])
        missed = [await send(b, cid, f"while asleep {n}") for n in range(5)]
        async with WsClient(resume_url(edge, alice, last_seen["messageId"])) as phone:
            # Sends racing the replay: each must arrive exactly once, live or replayed.
            racing = asyncio.gather(*(send(b, cid, f"racing {n}") for n in range(5)))
            replayed, done = await replay_until_done(phone)
            raced = await racing
            replayed_messages = [e for e in replayed if e["event"] == "new_message"]
            assert [e["messageId"] for e in replayed_messages[:5]] == [
                m["messageId"] for m in missed
            ]
            assert done["truncated"] is False
            assert isinstance(done["nextSince"], str)
            live: list[Event] = []
            pending = {m["messageId"] for m in raced} - {e["messageId"] for e in replayed_messages}
            while pending:
                event = await phone.next_event()
                live.append(event)
                pending.discard(event.get("messageId", ""))
            await phone.heartbeat()
            everything = [*replayed, *live, *phone.drain()]
    delivered = [e["messageId"] for e in everything if e.get("event") == "new_message"]
    expected = {m["messageId"] for m in [*missed, *raced]}
    assert expected <= set(delivered)
    assert len(delivered) == len(set(delivered)), "a message was delivered twice on the socket"


async def test_a_long_gap_is_truncated_at_the_replay_bound(
    stack: Stack, messaging: ServiceProcess
) -> None:
    small = stack.start(
        "ws-edge", EDGE_ID=f"edge-small-{stack.names[1][-6:]}", REPLAY_MAX_MESSAGES="3"
    )
    try:
        alice, bob = new_user(), new_user()
        async with rest_client(messaging.http_url, bob) as b:
            cid = (await create(b, alice))["id"]
            first = await send(b, cid, "seen")
            for n in range(6):
                await send(b, cid, f"m{n}")
        async with WsClient(resume_url(small, alice, first["messageId"])) as phone:
            replayed, done = await replay_until_done(phone)
        async with rest_client(messaging.http_url, alice) as a:
            rest = (await a.get("/sync", params={"since": done["nextSince"]})).json()
    finally:
        small.stop()
    messages = [e for e in replayed if e["event"] == "new_message"]
    assert [e["content"] for e in messages] == ["m0", "m1", "m2"]
    assert done["truncated"] is True
    assert [m["content"] for m in rest["items"]] == ["m3", "m4", "m5"]


async def test_a_new_socket_learns_who_is_already_online(
    edge: ServiceProcess, messaging: ServiceProcess, presence: ServiceProcess
) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    async with rest_client(messaging.http_url, alice) as a:
        await create(a, bob)
        await create(a, carol)
    async with AsyncExitStack() as sockets:
        bob_phone = await sockets.enter_async_context(WsClient.for_user(edge.ws_url, bob))
        await bob_phone.heartbeat()
        await bob_phone.send({"event": "status_change", "status": "busy"})
        await bob_phone.wait_event("status_change_ack")
        async with rest_client(presence.http_url, alice) as p:
            for _ in range(100):
                if (await p.get(f"/presence/{bob}")).json().get("status") == "busy":
                    break
                await asyncio.sleep(0.1)
        alice_phone = await sockets.enter_async_context(WsClient.for_user(edge.ws_url, alice))
        snapshot = await alice_phone.wait_event("user_status_change", userId=bob)
        await alice_phone.heartbeat()
        others = [e for e in alice_phone.drain() if e.get("userId") == carol]
    assert snapshot == {"event": "user_status_change", "userId": bob, "status": "busy"}
    assert others == []


async def test_a_new_conversation_is_announced_to_every_participant(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob = new_user(), new_user()
    async with WsClient.for_user(edge.ws_url, bob) as bob_phone:
        await bob_phone.heartbeat()
        async with rest_client(messaging.http_url, alice) as a:
            created = await create(a, bob, name="plans")
            again = await a.post("/conversations", json={"participantIds": [bob]})
            one_to_one = again.json()
            await a.post("/conversations", json={"participantIds": [bob]})
        announced = await bob_phone.wait_event("conversation_created", id=created["id"])
        pair = await bob_phone.wait_event("conversation_created", id=one_to_one["id"])
        # The one-to-one returned again (200) is not announced twice.
        await bob_phone.assert_nothing(
            lambda e: e.get("event") == "conversation_created", within=0.5
        )
    assert announced == {"event": "conversation_created", **created}
    assert pair["participantIds"] == [alice, bob]


async def test_a_send_that_dies_after_taking_its_seq_leaves_no_hole(
    stack: Stack, edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob = new_user(), new_user()
    doomed = stack.start("messaging", FAULT_CRASH_AFTER_CLAIM="true")
    survivor = stack.start("messaging", RELAY_INTERVAL_SECONDS="0.2", OUTBOX_MIN_AGE_SECONDS="0.5")
    try:
        async with WsClient.for_user(edge.ws_url, bob) as bob_phone:
            await bob_phone.heartbeat()
            async with rest_client(doomed.http_url, alice) as client:
                cid = (await create(client, bob))["id"]
                with pytest.raises(httpx.TransportError):
                    await send(client, cid, "half-sent")
            assert doomed.process.wait(10) == CRASH_EXIT_STATUS
            async with rest_client(survivor.http_url, alice) as client:
                after = await send(client, cid, "after")
                completed = await bob_phone.wait_event(
                    "new_message", timeout=15, content="half-sent"
                )
                page = (await client.get(f"/conversations/{cid}/messages?afterSeq=0")).json()
    finally:
        doomed.stop()
        survivor.stop()
    assert (completed["seq"], after["seq"]) == (1, 2)
    assert [(m["seq"], m["content"]) for m in page["items"]] == [(1, "half-sent"), (2, "after")]


async def test_sends_beyond_capacity_are_shed_with_retry_after_and_retries_land_once(
    stack: Stack,
) -> None:
    tight = stack.start("messaging", MAX_CONCURRENT_SENDS="1", SEND_QUEUE_TIMEOUT_SECONDS="0")
    try:
        alice = new_user()
        async with rest_client(tight.http_url, alice) as client:
            cid = (await create(client, new_user()))["id"]

            async def post(n: int) -> httpx.Response:
                return await client.post(
                    f"/conversations/{cid}/messages",
                    json={"content": f"m{n}", "messageType": "text", "clientMessageId": f"k{n}"},
                )

            first = await asyncio.gather(*(post(n) for n in range(20)))
            shed = [n for n, r in enumerate(first) if r.status_code == 503]
            for n in shed:
                for _ in range(50):
                    retried = await post(n)
                    if retried.status_code == 201:
                        break
                    await asyncio.sleep(0.05)
                assert retried.status_code == 201
            page = (await client.get(f"/conversations/{cid}/messages?afterSeq=0")).json()
    finally:
        tight.stop()
    assert {r.status_code for r in first} <= {201, 503}
    assert shed, "nothing was shed at a capacity of one send"
    assert all(first[n].headers["Retry-After"] == "1" for n in shed)
    assert sorted(m["content"] for m in page["items"]) == sorted(f"m{n}" for n in range(20))
    assert [m["seq"] for m in page["items"]] == list(range(1, 21))
