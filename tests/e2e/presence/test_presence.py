"""Presence over real sockets: ws-edge and presence processes, RabbitMQ and the database.

Contacts are made the way messaging makes them: membership documents in the stack's database
and a `conversation.created` on its broker.
"""

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from chat_core.broker import Broker, Topology
from chat_core.contacts import ConversationIndex
from chat_core.db import Database, connect
from chat_core.events import STATUSES, ConversationCreated
from tests.e2e.conftest import FAST_PRESENCE
from tests.support.clients import Event, WsClient, rest_client
from tests.support.stack import ServiceProcess, Stack
from tests.support.users import new_user

pytestmark = pytest.mark.e2e

Connect = Callable[[ServiceProcess, str], Awaitable[WsClient]]
Befriend = Callable[..., Awaitable[str]]


@pytest.fixture
async def stack_db(stack: Stack) -> AsyncIterator[Database]:
    client = connect(stack.mongo_url)
    yield client[stack.db_name]
    await client.close()


@pytest.fixture
async def stack_broker(stack: Stack) -> AsyncIterator[Broker]:
    connected = Broker(stack.amqp_url, Topology(stack.broker_prefix), "presence-e2e")
    await connected.start()
    yield connected
    await connected.close()


@pytest.fixture
def befriend(stack_db: Database, stack_broker: Broker) -> Befriend:
    """Put the users in one conversation, as messaging does when it creates one."""

    async def make(*participants: str) -> str:
        conversation_id = uuid.uuid4().hex
        await ConversationIndex(stack_db).record(conversation_id, participants)
        created = ConversationCreated(
            conversation_id=conversation_id, participant_ids=list(participants)
        )
        await stack_broker.publish_event(created, created.event)
        return conversation_id

    return make


@pytest.fixture(scope="module")
async def caught_up(edge: ServiceProcess, presence: ServiceProcess) -> None:
    """Presence may start behind a backlog of earlier tests' events: wait until it is through.

    The queue is first in, first out, so once a probe's connection shows, all before it has.
    """
    probe = new_user()
    async with WsClient.for_user(edge.ws_url, probe) as client:
        await client.heartbeat()
        await eventually(
            lambda: presence_of(presence, probe, probe), lambda p: p["devices"] == 1, timeout=45
        )


@pytest.fixture
async def device(caught_up: None) -> AsyncIterator[Connect]:
    """Connect a device and wait until its edge delivers to it; all closed after the test."""
    opened: list[WsClient] = []

    async def connect_device(edge: ServiceProcess, user_id: str) -> WsClient:
        client = WsClient.for_user(edge.ws_url, user_id)
        await client.__aenter__()
        opened.append(client)
        # The edge binds the user's deliveries before it reads frames: an answered heartbeat
        # means this device receives what is sent to the user from now on.
        await client.heartbeat()
        return client

    yield connect_device
    for client in opened:
        await client.close()


def status_of(user_id: str) -> Callable[[Event], bool]:
    return lambda event: event.get("event") == "user_status_change" and event["userId"] == user_id


async def seen(client: WsClient, user_id: str, status: str, timeout: float = 10.0) -> Event:
    event = await client.wait_for(status_of(user_id), timeout)
    # Exactly the spec's fields: a status is per user, so no conversationId.
    assert event == {"event": "user_status_change", "userId": user_id, "status": status}
    return event


async def presence_of(presence: ServiceProcess, viewer: str, user_id: str) -> dict[str, Any]:
    async with rest_client(presence.http_url, viewer) as client:
        response = await client.get(f"/presence/{user_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def eventually(
    check: Callable[[], Awaitable[dict[str, Any]]],
    condition: Callable[[dict[str, Any]], bool],
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Poll an HTTP view until it satisfies `condition`: there is no event to wait for."""
    async with asyncio.timeout(timeout):
        while True:
            body = await check()
            if condition(body):
                return body
            await asyncio.sleep(0.05)


# --- status changes ----------------------------------------------------------------------


async def test_each_status_is_acked_and_broadcast_to_contacts(
    edge: ServiceProcess, device: Connect, befriend: Befriend
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(alice, bob)
    bobs_phone = await device(edge, bob)
    alices_phone = await device(edge, alice)
    await seen(bobs_phone, alice, "available")

    for status in (*STATUSES[1:], STATUSES[0]):
        await alices_phone.send({"event": "status_change", "status": status})
        ack = await alices_phone.wait_event("status_change_ack")
        assert ack == {"event": "status_change_ack", "status": status}
        await seen(bobs_phone, alice, status)


async def test_a_status_that_did_not_change_is_acked_but_not_broadcast(
    edge: ServiceProcess, device: Connect, befriend: Befriend
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(alice, bob)
    bobs_phone = await device(edge, bob)
    alices_phone = await device(edge, alice)
    await seen(bobs_phone, alice, "available")

    await alices_phone.send({"event": "status_change", "status": "busy"})
    await alices_phone.wait_event("status_change_ack", status="busy")
    await seen(bobs_phone, alice, "busy")
    await alices_phone.send({"event": "status_change", "status": "busy"})
    await alices_phone.wait_event("status_change_ack", status="busy")

    await bobs_phone.assert_nothing(status_of(alice))


async def test_an_unknown_status_is_an_error_naming_the_allowed_ones(
    edge: ServiceProcess, device: Connect
) -> None:
    alices_phone = await device(edge, new_user())

    await alices_phone.send({"event": "status_change", "status": "sleeping"})

    error = await alices_phone.wait_event("error")
    assert all(status in error["message"] for status in STATUSES)


async def test_the_other_devices_of_a_contact_all_hear(
    edge: ServiceProcess, device: Connect, befriend: Befriend
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(alice, bob)
    bobs_phone, bobs_laptop = await device(edge, bob), await device(edge, bob)

    alices_phone = await device(edge, alice)
    await alices_phone.send({"event": "status_change", "status": "away"})

    for bobs_device in (bobs_phone, bobs_laptop):
        await seen(bobs_device, alice, "available")
        await seen(bobs_device, alice, "away")


async def test_reconnecting_comes_back_with_the_last_chosen_status(
    edge: ServiceProcess, device: Connect, befriend: Befriend
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(alice, bob)
    bobs_phone = await device(edge, bob)
    alices_phone = await device(edge, alice)
    await seen(bobs_phone, alice, "available")
    await alices_phone.send({"event": "status_change", "status": "busy"})
    await seen(bobs_phone, alice, "busy")

    await alices_phone.close()
    await seen(bobs_phone, alice, "offline")
    await device(edge, alice)

    await seen(bobs_phone, alice, "busy")


async def test_non_contacts_hear_nothing(
    edge: ServiceProcess, device: Connect, befriend: Befriend
) -> None:
    alice, bob, stranger = new_user(), new_user(), new_user()
    await befriend(alice, bob)
    await befriend(bob, stranger)
    strangers_phone = await device(edge, stranger)
    bobs_phone = await device(edge, bob)

    alices_phone = await device(edge, alice)
    await seen(bobs_phone, alice, "available")
    await alices_phone.send({"event": "status_change", "status": "away"})
    await seen(bobs_phone, alice, "away")
    await alices_phone.close()
    await seen(bobs_phone, alice, "offline")

    await strangers_phone.assert_nothing(status_of(alice), within=0.5)


# --- devices -----------------------------------------------------------------------------


async def test_offline_only_when_the_last_of_two_devices_closes(
    edge: ServiceProcess, presence: ServiceProcess, device: Connect, befriend: Befriend
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(alice, bob)
    bobs_phone = await device(edge, bob)
    alices_phone = await device(edge, alice)
    await seen(bobs_phone, alice, "available")
    alices_laptop = await device(edge, alice)
    await eventually(lambda: presence_of(presence, bob, alice), lambda p: p["devices"] == 2)

    await alices_phone.close()
    await eventually(lambda: presence_of(presence, bob, alice), lambda p: p["devices"] == 1)
    await bobs_phone.assert_nothing(status_of(alice))

    await alices_laptop.close()
    await seen(bobs_phone, alice, "offline")


async def test_devices_on_two_edges_are_one_user(
    edge: ServiceProcess,
    second_edge: ServiceProcess,
    presence: ServiceProcess,
    device: Connect,
    befriend: Befriend,
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(alice, bob)
    bobs_phone = await device(edge, bob)
    bobs_laptop = await device(second_edge, bob)

    alices_phone = await device(edge, alice)
    alices_laptop = await device(second_edge, alice)
    body = await eventually(lambda: presence_of(presence, bob, alice), lambda p: p["devices"] == 2)
    assert body["status"] == "available"
    for bobs_device in (bobs_phone, bobs_laptop):
        await seen(bobs_device, alice, "available")

    await alices_laptop.close()
    await eventually(lambda: presence_of(presence, bob, alice), lambda p: p["devices"] == 1)
    await bobs_phone.assert_nothing(status_of(alice))

    await alices_phone.close()
    for bobs_device in (bobs_phone, bobs_laptop):
        await seen(bobs_device, alice, "offline")


async def test_a_killed_edge_leaves_its_users_offline_within_the_timeout(
    stack: Stack, edge: ServiceProcess, device: Connect, befriend: Befriend
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(alice, bob)
    bobs_phone = await device(edge, bob)
    doomed = stack.start("ws-edge", EDGE_ID=f"edge-doomed-{uuid.uuid4().hex[:6]}")
    await device(doomed, alice)
    await seen(bobs_phone, alice, "available")

    # No close frame and no conn.closed: only the silence of the edge tells presence.
    doomed.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    await seen(bobs_phone, alice, "offline", timeout=15)
    elapsed = time.monotonic() - killed_at

    # Silent for the edge timeout since its last announcement (at most one announce interval
    # before the kill), then noticed by a sweep; the upper slack is for a loaded machine.
    timeout = float(FAST_PRESENCE["EDGE_TIMEOUT_SECONDS"])
    announce = float(FAST_PRESENCE["ANNOUNCE_INTERVAL_SECONDS"])
    sweep = float(FAST_PRESENCE["SWEEP_INTERVAL_SECONDS"])
    assert timeout - 2 * announce < elapsed < timeout + sweep + 4.0, f"after {elapsed:.2f}s"


# --- HTTP --------------------------------------------------------------------------------


async def test_http_presence_for_self_and_contacts(
    edge: ServiceProcess, presence: ServiceProcess, device: Connect, befriend: Befriend
) -> None:
    alice, bob, never_connected = new_user(), new_user(), new_user()
    await befriend(alice, bob, never_connected)
    await device(edge, alice)
    await device(edge, alice)

    mine = await eventually(
        lambda: presence_of(presence, alice, alice), lambda p: p["devices"] == 2
    )
    theirs = await presence_of(presence, bob, alice)
    absent = await presence_of(presence, bob, never_connected)

    # A contact sees what the user sees (lastActiveAt may have moved on by a heartbeat).
    assert {**theirs, "lastActiveAt": None} == {**mine, "lastActiveAt": None}
    assert set(mine) == {"userId", "status", "lastActiveAt", "devices"}
    assert (mine["userId"], mine["status"]) == (alice, "available")
    assert mine["lastActiveAt"].endswith("+00:00")
    assert absent == {
        "userId": never_connected,
        "status": "offline",
        "lastActiveAt": None,
        "devices": 0,
    }


async def test_http_batch_shows_only_self_and_contacts(
    edge: ServiceProcess, presence: ServiceProcess, device: Connect, befriend: Befriend
) -> None:
    alice, bob, carol, stranger = new_user(), new_user(), new_user(), new_user()
    await befriend(alice, bob)
    await befriend(alice, carol)
    await device(edge, bob)
    await device(edge, stranger)
    await eventually(lambda: presence_of(presence, bob, bob), lambda p: p["devices"] == 1)

    async with rest_client(presence.http_url, alice) as client:
        # A raw `+` as typed in a URL (it arrives as a space) and `%2B` alike.
        raw = await client.get(f"/presence?userIds={bob},{stranger},{carol},{alice}")
        encoded = await client.get("/presence", params={"userIds": f"{bob},{stranger},{carol}"})
        empty = await client.get("/presence", params={"userIds": stranger})
        too_many = await client.get(
            "/presence", params={"userIds": ",".join(new_user() for _ in range(201))}
        )

    assert raw.status_code == 200, raw.text
    assert [item["userId"] for item in raw.json()["items"]] == [bob, carol, alice]
    assert [item["userId"] for item in encoded.json()["items"]] == [bob, carol]
    bobs = raw.json()["items"][0]
    assert (bobs["status"], bobs["devices"]) == ("available", 1)
    assert empty.json() == {"items": []}
    assert too_many.status_code == 422


async def test_http_refusals(stack: Stack, presence: ServiceProcess, befriend: Befriend) -> None:
    alice, bob, stranger, disabled = new_user(), new_user(), new_user(), new_user()
    await befriend(alice, bob, disabled)
    assert stack.run_admin("users", "disable", disabled).returncode == 0

    async with httpx.AsyncClient(base_url=presence.http_url, timeout=10.0) as anonymous:
        no_token = await anonymous.get(f"/presence/{alice}")
        bad_token = await anonymous.get(
            f"/presence/{alice}", headers={"Authorization": "Bearer not-a-phone"}
        )
        not_bearer = await anonymous.get(
            f"/presence/{alice}", headers={"Authorization": f"Basic {alice}"}
        )
        batch_no_token = await anonymous.get("/presence", params={"userIds": alice})
    async with rest_client(presence.http_url, stranger) as client:
        not_a_contact = await client.get(f"/presence/{alice}")
    async with rest_client(presence.http_url, disabled) as client:
        disabled_viewer = await client.get(f"/presence/{alice}")

    for response in (no_token, bad_token, not_bearer, batch_no_token):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
    assert not_a_contact.status_code == 404
    assert alice not in not_a_contact.text
    assert disabled_viewer.status_code == 403


async def test_heartbeats_move_last_active_time(
    edge: ServiceProcess, presence: ServiceProcess, device: Connect
) -> None:
    alice = new_user()
    phone = await device(edge, alice)
    first = await eventually(
        lambda: presence_of(presence, alice, alice), lambda p: p["lastActiveAt"] is not None
    )

    await phone.heartbeat()

    await eventually(
        lambda: presence_of(presence, alice, alice),
        lambda p: p["lastActiveAt"] > first["lastActiveAt"],
    )


async def test_appearing_offline_hides_devices_from_contacts(
    edge: ServiceProcess, presence: ServiceProcess, device: Connect, befriend: Befriend
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(alice, bob)
    bobs_phone = await device(edge, bob)
    alices_phone = await device(edge, alice)
    await seen(bobs_phone, alice, "available")

    await alices_phone.send({"event": "status_change", "status": "offline"})
    await alices_phone.wait_event("status_change_ack", status="offline")
    await seen(bobs_phone, alice, "offline")

    to_bob = await presence_of(presence, bob, alice)
    to_alice = await presence_of(presence, alice, alice)
    assert (to_bob["status"], to_bob["devices"]) == ("offline", 0)
    assert (to_alice["status"], to_alice["devices"]) == ("offline", 1)
    # Her own last device leaving changes nothing anyone can see.
    await alices_phone.close()
    await bobs_phone.assert_nothing(status_of(alice))
