"""chat_client against the running stack: typed events, refusals, reconnect without gaps."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest

from chat_client import Backoff, CaughtUp, ChatClient, Connected, Disconnected, Event, RestClient
from chat_core.events import (
    MessageReadReceipt,
    NewMessage,
    StatusChangeAck,
    TypingIndicator,
    UserStatusChange,
)
from tests.support.stack import ServiceProcess
from tests.support.users import new_user

pytestmark = pytest.mark.e2e

FAST = Backoff(initial=0.1, maximum=0.5)


@pytest.fixture
async def exits() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def device(
    exits: AsyncExitStack, edge: ServiceProcess, messaging: ServiceProcess, user_id: str
) -> ChatClient:
    rest = await exits.enter_async_context(RestClient(messaging.http_url, user_id))
    client = ChatClient(edge.ws_url, user_id, rest=rest, backoff=FAST, replay_timeout=2.0)
    await exits.enter_async_context(client)
    await client.round_trip(5)
    return client


async def test_two_users_chat_with_typed_events(
    edge: ServiceProcess,
    messaging: ServiceProcess,
    presence: ServiceProcess,
    exits: AsyncExitStack,
) -> None:
    alice, bob = new_user(), new_user()
    a = await device(exits, edge, messaging, alice)
    b = await device(exits, edge, messaging, bob)
    assert a.rest is not None
    assert b.rest is not None
    conversation = await a.rest.create_conversation([bob], name="client test")
    conversation_id = conversation["id"]

    sent = await a.rest.send_message(conversation_id, "hello bob", client_message_id="k1")
    received = await b.wait_for(lambda e: isinstance(e, NewMessage), 10)
    assert isinstance(received, NewMessage)
    assert (received.message_id, received.sender_id, received.content) == (
        sent["messageId"],
        alice,
        "hello bob",
    )

    await b.typing(conversation_id)
    typing = await a.wait_for(lambda e: isinstance(e, TypingIndicator), 10)
    assert isinstance(typing, TypingIndicator)
    assert typing.user_id == bob

    await b.mark_read(conversation_id, received.message_id)
    read = await a.wait_for(lambda e: isinstance(e, MessageReadReceipt), 10)
    assert isinstance(read, MessageReadReceipt)
    assert (read.user_id, read.message_id) == (bob, received.message_id)

    await b.set_status("busy")
    assert isinstance(
        await b.wait_for(lambda e: isinstance(e, StatusChangeAck), 10), StatusChangeAck
    )
    change = await a.wait_for(
        lambda e: isinstance(e, UserStatusChange) and e.user_id == bob and e.status == "busy", 10
    )
    assert isinstance(change, UserStatusChange)


async def test_refused_token_stops_without_retrying(edge: ServiceProcess) -> None:
    user = new_user()
    client = ChatClient(edge.ws_url, user, token="not-a-phone-number", backoff=FAST)
    async with client:
        code, _ = await client.wait_stopped(10)
    assert code == 4001
    events = client.drain()
    assert [type(e) for e in events] == [Connected, Disconnected]
    assert isinstance(events[1], Disconnected)
    assert events[1].retry_in is None


async def test_reconnect_resumes_without_gaps_or_duplicates(
    edge: ServiceProcess,
    messaging: ServiceProcess,
    presence: ServiceProcess,
    exits: AsyncExitStack,
) -> None:
    alice, bob = new_user(), new_user()
    a = await device(exits, edge, messaging, alice)
    b = await device(exits, edge, messaging, bob)
    assert a.rest is not None
    conversation_id = (await a.rest.create_conversation([bob]))["id"]
    first = await a.rest.send_message(conversation_id, "before the drop")
    await b.wait_for(lambda e: isinstance(e, NewMessage), 10)

    await b.drop()
    await b.wait_for(lambda e: isinstance(e, Disconnected), 10)
    missed = [await a.rest.send_message(conversation_id, f"missed {n}") for n in range(3)]
    after_reconnect = await collect_until(b, lambda e: isinstance(e, CaughtUp), 15)
    after = await a.rest.send_message(conversation_id, "after the drop")
    after_reconnect += await collect_until(
        b, lambda e: isinstance(e, NewMessage) and e.message_id == after["messageId"], 10
    )
    assert any(isinstance(e, Connected) and e.resumed for e in after_reconnect)
    # The server replays (or, if its replay_done is late, /sync does); never the fallback.
    assert [e.via for e in after_reconnect if isinstance(e, CaughtUp)] in (["replay"], ["sync"])
    got = [e.message_id for e in after_reconnect if isinstance(e, NewMessage)]
    expected = [m["messageId"] for m in missed] + [after["messageId"]]
    assert got == expected

    # A second device resuming from a cursor gets everything after it, each message once.
    other = ChatClient(edge.ws_url, bob, rest=b.rest, since=first["messageId"], backoff=FAST)
    async with other:
        caught_up = await collect_until(other, lambda e: isinstance(e, CaughtUp), 15)
    replayed = [e.message_id for e in caught_up if isinstance(e, NewMessage)]
    assert [m for m in replayed if m in expected] == expected
    assert first["messageId"] not in replayed or replayed.count(first["messageId"]) == 1
    assert len(replayed) == len(set(replayed))


async def collect_until(
    client: ChatClient, match: Callable[[Event], bool], timeout: float
) -> list[Event]:
    """Every event up to and including the first that matches."""
    seen: list[Event] = []
    async with asyncio.timeout(timeout):
        while not seen or not match(seen[-1]):
            seen.append(await client.next_event(timeout))
    return seen
