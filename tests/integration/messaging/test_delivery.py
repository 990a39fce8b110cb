"""Sending, the outbox relay and the worker against the real broker and database."""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from aio_pika.abc import AbstractIncomingMessage

from chat_core.broker import (
    MESSAGING,
    TYPING,
    Broker,
    Topology,
    delete_topology,
    recipients,
    user_key,
)
from chat_core.clock import utcnow
from chat_core.db import Database
from chat_core.delivery_wire import decode_envelope
from chat_core.events import (
    ClientEvent,
    ClientMessageRead,
    ClientTyping,
    ConnectionRef,
    Deliver,
    ErrorFrame,
    MessageReadReceipt,
    NewMessage,
    TypingIndicator,
)
from chat_core.ids import new_id
from chat_core.store.conversations import Conversation, Conversations
from chat_core.store.messages import Message, Messages, Tombstone, new_message_frame
from chat_core.store.read_state import ReadStates
from messaging.client_ids import ClientIds
from messaging.conversations import create_conversation
from messaging.faults import Faults
from messaging.members import Members
from messaging.outbox import Outbox
from messaging.relay import relay_pending
from messaging.sender_reads import SenderReads
from messaging.sending import Draft, SendInProgress, Store, send_message
from messaging.throttle import Throttle
from messaging.worker import Worker
from tests.support.stack import run_names
from tests.support.users import new_user


@dataclass(frozen=True)
class Received:
    user_id: str
    envelope: Deliver
    expiration: float | None


class Deliveries:
    """What edges would receive: every delivery routed to the watched users."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Received] = asyncio.Queue()
        self._watched: set[str] = set()

    async def watch(self, broker: Broker, *user_ids: str) -> None:
        self._watched.update(user_ids)
        channel = await broker.connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for user_id in user_ids:
            await queue.bind(broker.deliver_exchange, user_key(user_id))
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        envelope = decode_envelope(message)
        assert isinstance(envelope, Deliver)
        expiration = message.expiration
        assert expiration is None or isinstance(expiration, int | float)
        # One copy names every recipient; an edge hands it to those it holds, as here.
        for user_id in recipients(message):
            if user_id in self._watched:
                self._queue.put_nowait(Received(user_id, envelope, expiration))

    async def take(self, count: int, timeout: float = 5.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            return [await self._queue.get() for _ in range(count)]

    async def assert_none(self, within: float = 0.5) -> None:
        try:
            unexpected = await asyncio.wait_for(self._queue.get(), within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected delivery: {unexpected}")


@dataclass
class World:
    db: Database
    broker: Broker
    conversations: Conversations
    messages: Messages
    outbox: Outbox
    read_states: ReadStates
    members: Members
    deliveries: Deliveries

    async def conversation(self, *participants: str, name: str | None = "g") -> Conversation:
        conversation, _ = await create_conversation(
            self.conversations, participants[0], participants, name, utcnow()
        )
        return conversation

    @property
    def store(self) -> Store:
        return Store(
            members=self.members,
            conversations=self.conversations,
            messages=self.messages,
            sender_reads=SenderReads.for_broker(self.read_states, self.broker),
            outbox=self.outbox,
            client_ids=ClientIds(self.db),
        )

    async def send(self, draft: Draft, faults: Faults | None = None) -> tuple[Message, bool]:
        return await send_message(
            draft,
            store=self.store,
            deliverer=self.broker,
            now=utcnow(),
            faults=faults or Faults(),
            takeover_after=10.0,
        )

    async def relay(self, written_before: datetime) -> int:
        return await relay_pending(self.store, self.broker, written_before)


@pytest.fixture
async def world(db: Database, broker: Broker) -> World:
    return make_world(db, broker)


def make_world(db: Database, broker: Broker) -> World:
    conversations = Conversations(db)
    return World(
        db=db,
        broker=broker,
        conversations=conversations,
        messages=Messages(db),
        outbox=Outbox(db),
        read_states=ReadStates(db),
        members=Members(conversations.get, 100),
        deliveries=Deliveries(),
    )


class Crash(Exception):
    """Stands in for the process dying at a fault point."""


@dataclass(frozen=True)
class CrashAt(Faults):
    def after_claim(self) -> None:
        if self.crash_after_claim:
            raise Crash

    def after_write(self) -> None:
        if self.crash_after_write:
            raise Crash


# --- sending --------------------------------------------------------------------------


async def test_a_sent_message_reaches_every_participant_and_leaves_no_outbox(
    world: World,
) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    conversation = await world.conversation(alice, bob, carol)
    await world.deliveries.watch(world.broker, alice, bob, carol)
    draft = Draft(conversation.conversation_id, alice, "hello", "video")
    sent, created = await world.send(draft)
    assert created
    received = await world.deliveries.take(3)
    assert sorted(r.user_id for r in received) == sorted([alice, bob, carol])
    for r in received:
        assert r.envelope == Deliver(frame=new_message_frame(sent), at=sent.created_at)
        assert r.expiration is None
    assert await world.messages.get(sent.message_id) == sent
    await world.outbox.flush()
    assert await world.outbox.count() == 0


async def test_the_same_client_message_id_returns_the_first_and_delivers_once(
    world: World,
) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    await world.deliveries.watch(world.broker, bob)
    draft = Draft(conversation.conversation_id, alice, "once", "text", "tap-1")
    first, created = await world.send(draft)
    (delivered,) = await world.deliveries.take(1)
    again, created_again = await world.send(Draft(**{**draft.__dict__, "content": "changed"}))
    assert created
    assert not created_again
    assert again == first
    assert isinstance(delivered.envelope.frame, NewMessage)
    assert delivered.envelope.frame.message_id == first.message_id
    await world.deliveries.assert_none()
    assert await world.db.messages.count_documents({}) == 1
    assert await world.db.timeline.count_documents({}) == 1
    await world.outbox.flush()
    assert await world.outbox.count() == 0


async def test_a_crash_after_the_write_leaves_the_event_for_the_relay(world: World) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    await world.deliveries.watch(world.broker, alice, bob)
    with pytest.raises(Crash):
        await world.send(
            Draft(conversation.conversation_id, alice, "survives", "audio"),
            CrashAt(crash_after_write=True),
        )
    await world.deliveries.assert_none()
    (pending,) = await world.outbox.written_before(utcnow() + timedelta(seconds=1))
    stored = await world.messages.get(pending.message.message_id)
    assert stored is not None
    assert stored.seq == 1

    young_only = await world.relay(utcnow() - timedelta(seconds=60))
    assert young_only == 0
    relayed = await world.relay(utcnow() + timedelta(seconds=1))
    assert relayed == 1
    received = await world.deliveries.take(2)
    assert {r.user_id for r in received} == {alice, bob}
    assert all(r.envelope.frame == new_message_frame(stored) for r in received)
    await world.outbox.flush()
    assert await world.outbox.count() == 0
    assert await world.db.messages.count_documents({}) == 1


async def test_the_relay_writes_a_message_the_request_never_got_to(world: World) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    await world.deliveries.watch(world.broker, bob)
    message = Message(
        new_id(), conversation.conversation_id, 0, alice, "half", "image", utcnow(), "k"
    )
    await world.outbox.add(message, conversation.participant_ids, utcnow())
    world.outbox.settled(message.message_id)  # the request that wrote it died
    relayed = await world.relay(utcnow() + timedelta(seconds=1))
    assert relayed == 1
    (received,) = await world.deliveries.take(1)
    assert isinstance(received.envelope.frame, NewMessage)
    assert received.envelope.frame.message_id == message.message_id
    assert received.envelope.frame.seq == 1
    assert await world.messages.get(message.message_id) is not None


async def test_a_send_that_dies_after_taking_its_seq_leaves_no_hole(world: World) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    cid = conversation.conversation_id
    await world.deliveries.watch(world.broker, bob)
    with pytest.raises(Crash):
        await world.send(Draft(cid, alice, "half-sent", "text"), CrashAt(crash_after_claim=True))
    after, _ = await world.send(Draft(cid, alice, "next", "text"))
    assert after.seq == 2
    (pending,) = await world.outbox.written_before(utcnow() + timedelta(seconds=1))
    # Taken, but not yet findable by id: the relay finds the position and completes it.
    assert await world.messages.get(pending.message.message_id) is None
    assert await world.relay(utcnow() + timedelta(seconds=1)) == 1
    completed = await world.messages.get(pending.message.message_id)
    assert completed is not None
    assert completed.seq == 1
    assert [e.seq for e in await world.messages.span(cid, 1, 2)] == [1, 2]
    frames = [r.envelope.frame for r in await world.deliveries.take(2)]
    assert {f.seq for f in frames if isinstance(f, NewMessage)} == {1, 2}


async def test_a_message_stored_twice_leaves_a_tombstone_not_a_duplicate(world: World) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    cid = conversation.conversation_id
    message = Message(new_id(), cid, 0, alice, "raced", "text", utcnow().replace(microsecond=0))
    first, won = await world.messages.append(message, 0)
    between, _ = await world.messages.append(
        Message(new_id(), cid, 0, bob, "b", "text", utcnow()), 0
    )
    # The same message claimed again past another one (a slow request and the relay).
    second, won_again = await world.messages.append(message, between.seq)
    assert (won, won_again) == (True, False)
    assert second == first
    assert first.seq == 1
    entries = await world.messages.span(cid, 1, 3)
    assert entries[:2] == [first, between]
    assert isinstance(entries[2], Tombstone)
    assert entries[2].seq == 3


async def test_a_repeat_while_the_first_send_is_unfinished_is_told_to_retry(world: World) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    cid = conversation.conversation_id
    with pytest.raises(Crash):
        await world.send(Draft(cid, alice, "x", "text", "k"), CrashAt(crash_after_claim=True))
    with pytest.raises(SendInProgress):
        await world.send(Draft(cid, alice, "x", "text", "k"))
    assert await world.relay(utcnow() + timedelta(seconds=1)) == 1
    again, created = await world.send(Draft(cid, alice, "x", "text", "k"))
    assert not created
    assert again.seq == 1


# --- the worker -----------------------------------------------------------------------


@pytest.fixture
async def worker(world: World) -> Worker:
    started = Worker(
        deliverer=world.broker,
        members=world.members,
        messages=world.messages,
        read_states=world.read_states,
        throttle=Throttle(60.0),
    )
    await started.start(world.broker, prefetch=8)
    return started


def client_event(
    user_id: str, frame: ClientTyping | ClientMessageRead, connection_id: str = "conn-1"
) -> ClientEvent:
    return ClientEvent.wrap(
        ConnectionRef(user_id=user_id, connection_id=connection_id, edge_id="edge-test"), frame
    )


@pytest.mark.usefixtures("worker")
async def test_typing_reaches_the_others_only_with_a_ttl(world: World) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    conversation = await world.conversation(alice, bob, carol)
    cid = conversation.conversation_id
    await world.deliveries.watch(world.broker, alice, bob, carol)
    typing = client_event(alice, ClientTyping(event="typing", conversation_id=cid))
    for _ in range(3):
        await world.broker.publish_event(typing, typing.event)
    received = await world.deliveries.take(2)
    assert sorted(r.user_id for r in received) == sorted([bob, carol])
    for r in received:
        assert r.envelope.frame == TypingIndicator(conversation_id=cid, user_id=alice)
        assert r.expiration is not None
        assert 0 < r.expiration <= 5
    # Throttled: the repeats within the interval reach nobody.
    await world.deliveries.assert_none()


@pytest.mark.usefixtures("worker")
async def test_typing_from_an_outsider_is_refused_to_them_alone(world: World) -> None:
    alice, bob, mallory = new_user(), new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    await world.deliveries.watch(world.broker, alice, bob, mallory)
    typing = client_event(
        mallory,
        ClientTyping(event="typing", conversation_id=conversation.conversation_id),
        "conn-m",
    )
    await world.broker.publish_event(typing, typing.event)
    (refused,) = await world.deliveries.take(1)
    assert refused.user_id == mallory
    assert refused.envelope.connection_id == "conn-m"
    assert isinstance(refused.envelope.frame, ErrorFrame)
    await world.deliveries.assert_none()


@pytest.mark.usefixtures("worker")
async def test_a_read_receipt_is_persisted_then_relayed_to_the_others(world: World) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    conversation = await world.conversation(alice, bob, carol)
    cid = conversation.conversation_id
    sent, _ = await world.send(Draft(cid, alice, "read me", "text"))
    await world.deliveries.watch(world.broker, alice, bob, carol)
    read = client_event(
        bob,
        ClientMessageRead(event="message_read", conversation_id=cid, message_id=sent.message_id),
    )
    await world.broker.publish_event(read, read.event)
    received = await world.deliveries.take(3)
    # The others, and the reader's own other devices (not the socket it came from).
    assert sorted(r.user_id for r in received) == sorted([alice, bob, carol])
    receipt = MessageReadReceipt(conversation_id=cid, message_id=sent.message_id, user_id=bob)
    assert all(r.envelope.frame == receipt for r in received)
    assert all(r.envelope.skip_connection_id == "conn-1" for r in received)
    position = await world.read_states.get(cid, bob)
    assert position is not None
    assert position.last_read_message_id == sent.message_id
    assert position.read_seq == sent.seq
    await world.deliveries.assert_none()


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("which", ["unknown", "other conversation", "malformed"])
async def test_a_receipt_for_a_message_not_in_the_conversation_is_refused(
    world: World, which: str
) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    elsewhere = await world.conversation(alice, bob, name="other")
    stray, _ = await world.send(Draft(elsewhere.conversation_id, alice, "x", "text"))
    message_id = {
        "unknown": new_id(),
        "other conversation": stray.message_id,
        "malformed": "not-an-id",
    }[which]
    await world.deliveries.watch(world.broker, alice, bob)
    read = client_event(
        bob,
        ClientMessageRead(
            event="message_read",
            conversation_id=conversation.conversation_id,
            message_id=message_id,
        ),
        "conn-b",
    )
    await world.broker.publish_event(read, read.event)
    (refused,) = await world.deliveries.take(1)
    assert refused.user_id == bob
    assert refused.envelope.connection_id == "conn-b"
    assert isinstance(refused.envelope.frame, ErrorFrame)
    assert message_id in refused.envelope.frame.message
    assert await world.read_states.get(conversation.conversation_id, bob) is None
    await world.deliveries.assert_none()


@pytest.mark.usefixtures("worker")
async def test_an_envelope_the_handler_cannot_take_is_dead_lettered(world: World) -> None:
    dead: asyncio.Queue[bytes] = asyncio.Queue()
    channel = await world.broker.connection.channel()
    dead_queue = await channel.get_queue(world.broker.topology.dead_queue(MESSAGING))

    async def on_dead(message: AbstractIncomingMessage) -> None:
        dead.put_nowait(message.body)

    await dead_queue.consume(on_dead, no_ack=True)
    # A typing envelope routed to the read-receipt queue decodes, but is not its to handle.
    misrouted = client_event(new_user(), ClientTyping(event="typing", conversation_id=new_id()))
    await world.broker.publish_event(misrouted, "client.message_read")
    body = await asyncio.wait_for(dead.get(), 10)
    assert ClientEvent.model_validate_json(body) == misrouted


async def test_the_worker_consumes_both_queues(world: World, worker: Worker) -> None:
    channel = await world.broker.connection.channel()
    for name in (TYPING, MESSAGING):
        queue = await channel.declare_queue(world.broker.topology.queue(name), passive=True)
        consumers = queue.declaration_result.consumer_count
        assert consumers is not None
        assert consumers >= 1


# --- read positions have one writer ----------------------------------------------------


async def test_a_senders_read_position_moves_here_without_partitions(world: World) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    sent, _ = await world.send(Draft(conversation.conversation_id, alice, "mine", "text"))
    position = await world.read_states.get(conversation.conversation_id, alice)
    assert position is not None
    assert (position.read_seq, position.last_read_message_id) == (sent.seq, sent.message_id)


async def test_with_partitions_the_senders_read_position_is_moved_by_its_owner(
    db: Database, amqp_url: str
) -> None:
    # Several messaging instances: the one consuming the sender's partition applies their
    # message_read events, so it is the one that moves their position for a send too.
    _, prefix = run_names()
    partitioned = Broker(amqp_url, Topology(prefix, partitions=4), "test")
    await partitioned.start()
    try:
        world = make_world(db, partitioned)
        alice, bob = new_user(), new_user()
        conversation = await world.conversation(alice, bob)
        cid = conversation.conversation_id
        sent, _ = await world.send(Draft(cid, alice, "mine", "text"))
        # Nobody consumes the partitions yet: the request itself wrote nothing.
        assert await world.read_states.get(cid, alice) is None
        owner = Worker(
            deliverer=partitioned,
            members=world.members,
            messages=world.messages,
            read_states=world.read_states,
            throttle=Throttle(60.0),
        )
        await owner.start(partitioned, prefetch=8)
        position = None
        for _ in range(200):  # up to 10 s: the owner consumes the event asynchronously
            if (position := await world.read_states.get(cid, alice)) is not None:
                break
            await asyncio.sleep(0.05)
        assert position is not None
        assert (position.read_seq, position.last_read_message_id) == (sent.seq, sent.message_id)
        assert await world.read_states.get(cid, bob) is None
    finally:
        await delete_topology(await partitioned.connection.channel(), partitioned.topology)
        await partitioned.close()
