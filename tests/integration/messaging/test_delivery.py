"""Sending, the outbox relay and the worker against the real broker and database."""

import asyncio
from dataclasses import dataclass, replace
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
from chat_core.ids import message_id_for, new_id
from chat_core.limits import KeyedLimiter, Rate
from chat_core.store.conversations import Conversation, Conversations
from chat_core.store.messages import OUTBOX_ENTRIES, Message, Messages, Tombstone, new_message_frame
from chat_core.store.read_state import ReadStates
from chat_core.store.sync import CLAIM_DEADLINE
from messaging.conversations import create_conversation
from messaging.faults import Faults
from messaging.members import Members
from messaging.outbox import Outbox
from messaging.relay import relay_pending
from messaging.sender_reads import SenderReads
from messaging.sending import Draft, SendInProgress, Store, send_message
from messaging.socket_sends import SocketSends
from messaging.throttle import Throttle
from messaging.worker import Worker
from messaging.write_behind import WriteBehind
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
    store: Store

    async def conversation(self, *participants: str, name: str | None = "g") -> Conversation:
        conversation, _ = await create_conversation(
            self.conversations, participants[0], participants, name, utcnow()
        )
        return conversation

    async def settle(self) -> None:
        """What the service's flush job does: write behind, then remove outbox entries."""
        await self.store.write_behind.flush()

    async def send(self, draft: Draft, faults: Faults | None = None) -> tuple[Message, bool]:
        return await send_message(
            draft,
            store=self.store,
            deliverer=self.broker,
            now=utcnow(),
            faults=faults or Faults(),
            takeover_after=10.0,
        )

    async def relay(self, written_before: datetime, *, after_deadline: bool = False) -> int:
        """One relay round; `after_deadline`: as late as when dead sends get a new position."""
        now = utcnow() + (CLAIM_DEADLINE + timedelta(seconds=1) if after_deadline else timedelta())
        return await relay_pending(self.store, self.broker, written_before, now)

    def worker(self) -> Worker:
        return Worker(
            deliverer=self.broker,
            members=self.members,
            messages=self.messages,
            read_states=self.read_states,
            throttle=Throttle(60.0),
            sends=SocketSends(
                store=self.store,
                deliverer=self.broker,
                faults=Faults(),
                limiter=KeyedLimiter(Rate(1000.0, 1000)),
                max_content_chars=4000,
                takeover_after=10.0,
            ),
        )


@pytest.fixture
async def world(db: Database, broker: Broker) -> World:
    return make_world(db, broker)


def make_world(db: Database, broker: Broker) -> World:
    conversations = Conversations(db)
    messages = Messages(db)
    outbox = Outbox(db)
    read_states = ReadStates(db)
    members = Members(conversations.get, 100)
    store = Store(
        members=members,
        conversations=conversations,
        messages=messages,
        outbox=outbox,
        write_behind=WriteBehind(
            conversations, SenderReads.for_broker(read_states, broker), outbox
        ),
    )
    return World(
        db=db,
        broker=broker,
        conversations=conversations,
        messages=messages,
        outbox=outbox,
        read_states=read_states,
        members=members,
        deliveries=Deliveries(),
        store=store,
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
    await world.settle()
    assert await world.db.timeline.count_documents(OUTBOX_ENTRIES) == 0


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
    await world.settle()
    assert await world.db.timeline.count_documents(OUTBOX_ENTRIES) == 0
    # One by-id document and one position.
    assert await world.db.timeline.count_documents({}) == 2


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
    await world.settle()
    assert await world.db.timeline.count_documents(OUTBOX_ENTRIES) == 0
    assert await world.db.timeline.count_documents({}) == 2


async def test_the_relay_writes_a_message_the_request_never_got_to(world: World) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    await world.deliveries.watch(world.broker, bob)
    message = Message(
        new_id(), conversation.conversation_id, 0, alice, "half", "image", utcnow(), "k"
    )
    await world.outbox.add(message, conversation.participant_ids, utcnow())
    world.outbox.settled(message.message_id)  # the request that wrote it died
    # Its own send could still take a position until its claim deadline: not before.
    assert await world.relay(utcnow() + timedelta(seconds=1)) == 0
    relayed = await world.relay(utcnow() + timedelta(seconds=1), after_deadline=True)
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
    # Positioned and findable by id, never announced: the relay completes it.
    taken = await world.messages.get(pending.message.message_id)
    assert taken is not None
    assert taken.seq == 1
    assert await world.relay(utcnow() + timedelta(seconds=1)) == 1
    assert [e.seq for e in await world.messages.span(cid, 1, 2)] == [1, 2]
    frames = [r.envelope.frame for r in await world.deliveries.take(2)]
    assert {f.seq for f in frames if isinstance(f, NewMessage)} == {1, 2}


async def test_a_message_positioned_twice_leaves_a_tombstone_not_a_duplicate(
    world: World,
) -> None:
    # Two relays finishing one dead send at once: both take a position, one settles it.
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    cid = conversation.conversation_id
    stamp = utcnow().replace(microsecond=0)
    reserved = Message(new_id(), cid, 0, alice, "raced", "text", stamp)
    await world.messages.reserve(reserved)
    first = await world.messages.take_position(replace(reserved, seq=1))
    between, _ = await world.messages.append(Message(new_id(), cid, 0, bob, "b", "text", stamp), 0)
    second = await world.messages.take_position(replace(reserved, seq=3))
    assert await world.messages.settle(reserved, first) == first
    assert await world.messages.settle(reserved, second) == first
    entries = await world.messages.span(cid, 1, 3)
    assert entries[:2] == [first, between]
    assert isinstance(entries[2], Tombstone)
    assert entries[2].seq == 3
    assert await world.messages.get(reserved.message_id) == first


async def test_a_repeat_after_the_first_send_took_its_seq_answers_it_and_it_arrives_once(
    world: World,
) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    cid = conversation.conversation_id
    await world.deliveries.watch(world.broker, bob)
    with pytest.raises(Crash):
        await world.send(Draft(cid, alice, "x", "text", "k"), CrashAt(crash_after_claim=True))
    again, created = await world.send(Draft(cid, alice, "x", "text", "k"))
    assert not created
    assert again.seq == 1
    # Never announced by the request that died: the relay does it, once.
    assert await world.relay(utcnow() + timedelta(seconds=1)) == 1
    (received,) = await world.deliveries.take(1)
    assert isinstance(received.envelope.frame, NewMessage)
    assert received.envelope.frame.message_id == again.message_id
    await world.deliveries.assert_none()


async def test_a_repeat_while_the_first_send_is_unfinished_is_told_to_retry(world: World) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    cid = conversation.conversation_id
    # The first attempt, caught between its reservation (and outbox entry) and its seq.
    draft = Draft(cid, alice, "x", "text", "k")
    first = Message(
        message_id_for(cid, alice, "k"),
        cid,
        1,
        alice,
        "x",
        "text",
        utcnow().replace(microsecond=0),
        "k",
    )
    await world.messages.reserve(first)
    await world.outbox.add(first, conversation.participant_ids, utcnow())
    world.outbox.settled(first.message_id)
    with pytest.raises(SendInProgress):
        await world.send(draft)
    assert await world.relay(utcnow() + timedelta(seconds=1), after_deadline=True) == 1
    again, created = await world.send(draft)
    assert not created
    assert again.message_id == first.message_id
    assert again.seq == 1


async def test_a_repeat_takes_over_a_reservation_whose_send_died_before_its_outbox_entry(
    world: World,
) -> None:
    alice, bob = new_user(), new_user()
    conversation = await world.conversation(alice, bob)
    cid = conversation.conversation_id
    await world.deliveries.watch(world.broker, bob)
    long_ago = (utcnow() - CLAIM_DEADLINE - timedelta(seconds=5)).replace(microsecond=0)
    first = Message(message_id_for(cid, alice, "k"), cid, 1, alice, "first", "text", long_ago, "k")
    await world.messages.reserve(first)  # and then the process died
    stored, _ = await world.send(Draft(cid, alice, "retry", "text", "k"))
    assert (stored.message_id, stored.seq, stored.content) == (first.message_id, 1, "first")
    (received,) = await world.deliveries.take(1)
    assert received.envelope.frame == new_message_frame(stored)
    await world.settle()
    assert await world.db.timeline.count_documents(OUTBOX_ENTRIES) == 0
    again, created = await world.send(Draft(cid, alice, "retry", "text", "k"))
    assert (again, created) == (stored, False)
    await world.deliveries.assert_none()


# --- the worker -----------------------------------------------------------------------


@pytest.fixture
async def worker(world: World) -> Worker:
    started = world.worker()
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
    # Written behind the request, by the next flush.
    assert await world.read_states.get(conversation.conversation_id, alice) is None
    await world.settle()
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
        await world.settle()
        # Nobody consumes the partitions yet: the flush itself wrote nothing.
        assert await world.read_states.get(cid, alice) is None
        owner = world.worker()
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
