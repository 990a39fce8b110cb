"""The presence consumer and sweep against the real broker and the real database.

Events go in as the edge publishes them (events exchange); what comes out is read from the
delivery exchange exactly as an edge would receive it.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiormq
import pytest
from aio_pika.abc import AbstractIncomingMessage

from chat_core.broker import PRESENCE, Broker, recipients, user_key
from chat_core.clock import to_milliseconds, utcnow
from chat_core.contacts import ConversationIndex
from chat_core.db import Database
from chat_core.delivery_wire import decode_envelope
from chat_core.events import (
    STATUSES,
    ClientEvent,
    ClientHeartbeat,
    ClientStatusChange,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionRef,
    ConversationCreated,
    Deliver,
    EdgeAlive,
    Frame,
    InboundEvent,
    Status,
    UserStatusChange,
    inbound_event_adapter,
)
from presence.consumer import presence_handler
from presence.contacts import ContactBook
from presence.edges import EdgeRepository
from presence.repository import PresenceRepository
from presence.state import Presence, Timeouts
from presence.tracker import PresenceTracker
from tests.support.users import new_user

EDGE = "edge-it"


class Clock:
    """Presence's notion of now, moved by the test instead of waited for."""

    def __init__(self) -> None:
        # Whole milliseconds, as stored, so times read back compare equal.
        self.now = to_milliseconds(utcnow())

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class Deliveries:
    """What the delivery exchange carries for some users, as an edge would see it."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[str, Deliver]] = asyncio.Queue()
        self.watched: set[str] = set()

    @classmethod
    async def watch(cls, broker: Broker, *user_ids: str) -> "Deliveries":
        deliveries = cls()
        deliveries.watched.update(user_ids)
        channel = await broker.connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for user_id in user_ids:
            await queue.bind(broker.deliver_exchange, user_key(user_id))
        await queue.consume(deliveries._on_message, no_ack=True)
        return deliveries

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        envelope = decode_envelope(message)
        assert isinstance(envelope, Deliver)
        # One copy names every recipient; an edge hands it to those it holds, as here.
        for user_id in recipients(message):
            if user_id in self.watched:
                self.received.put_nowait((user_id, envelope))

    async def wait(
        self, match: Callable[[str, Deliver], bool], timeout: float = 10.0
    ) -> tuple[str, Deliver]:
        async with asyncio.timeout(timeout):
            while True:
                user_id, envelope = await self.received.get()
                if match(user_id, envelope):
                    return user_id, envelope

    async def status_seen_by(
        self, viewer: str, user_id: str, status: Status, timeout: float = 10.0
    ) -> None:
        await self.wait(
            lambda to, d: (
                to == viewer
                and d.frame.dump()
                == {"event": "user_status_change", "userId": user_id, "status": status}
            ),
            timeout,
        )

    async def assert_nothing(
        self, match: Callable[[str, Deliver], bool], within: float = 0.5
    ) -> None:
        try:
            found = await self.wait(match, within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected delivery: {found}")

    async def statuses_for(self, viewer: str, count: int) -> list[str]:
        seen: list[str] = []
        while len(seen) < count:
            _, envelope = await self.wait(
                lambda to, d: to == viewer and d.frame.event == "user_status_change"
            )
            assert isinstance(envelope.frame, UserStatusChange)
            seen.append(envelope.frame.status)
        return seen


def is_status_change(_to: str, envelope: Deliver) -> bool:
    return envelope.frame.event == "user_status_change"


@dataclass
class Running:
    tracker: PresenceTracker
    contacts: ContactBook
    presences: PresenceRepository
    clock: Clock
    broker: Broker
    db: Database

    async def publish(self, envelope: Frame, key: str) -> None:
        await self.broker.publish_event(envelope, key)

    async def opened(self, ref: ConnectionRef, seconds: float = 0) -> None:
        event = ConnectionOpened(**ref.model_dump(), at=self.clock.now + timedelta(seconds=seconds))
        await self.publish(event, event.event)

    async def closed(self, ref: ConnectionRef, seconds: float = 0) -> None:
        event = ConnectionClosed(**ref.model_dump(), at=self.clock.now + timedelta(seconds=seconds))
        await self.publish(event, event.event)

    async def client(self, ref: ConnectionRef, frame: ClientHeartbeat | ClientStatusChange) -> None:
        envelope = ClientEvent(
            event=f"client.{frame.event}",  # type: ignore[arg-type]
            **ref.model_dump(),
            at=self.clock.now,
            frame=frame,
        )
        await self.publish(envelope, envelope.event)

    async def choose(self, ref: ConnectionRef, status: Status) -> None:
        await self.client(ref, ClientStatusChange(event="status_change", status=status))

    async def stored(
        self, user_id: str, condition: Callable[[Presence], bool], timeout: float = 10.0
    ) -> Presence:
        """Poll the stored presence until it satisfies `condition`: no event says it is done."""
        async with asyncio.timeout(timeout):
            while True:
                presence = await self.presences.load(user_id)
                if condition(presence):
                    return presence
                await asyncio.sleep(0.02)

    async def edge_alive(self, edge_id: str, connections: int = 1) -> None:
        # Straight to the tracker: the sweep that follows must see it stored.
        alive = EdgeAlive(edge_id=edge_id, at=self.clock.now, connections=connections)
        await self.tracker.edge_alive(alive)


@pytest.fixture
async def presence(db: Database, broker: Broker) -> AsyncIterator[Running]:
    clock = Clock()
    presences = PresenceRepository(db)
    contacts = ContactBook(db, ttl_seconds=3600)
    tracker = PresenceTracker(
        presences,
        EdgeRepository(db),
        contacts,
        broker,
        Timeouts(edge=timedelta(seconds=30), idle=timedelta(seconds=120)),
        clock=clock,
    )
    handler = presence_handler(tracker, contacts)
    # The tasks that run messages (handler, then ack): teardown lets them finish before the
    # broker fixture deletes the queue under them.
    running: set[asyncio.Task[object]] = set()

    async def tracked(event: InboundEvent) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        await handler(event)

    queue = await broker.consume(PRESENCE, inbound_event_adapter, tracked, prefetch=64)
    yield Running(tracker, contacts, presences, clock, broker, db)
    channel = await queue.channel.get_underlay_channel()
    assert isinstance(channel, aiormq.Channel)
    for consumer_tag in list(channel.consumers):
        await queue.cancel(consumer_tag)
    await asyncio.gather(*running, return_exceptions=True)


async def befriend(db: Database, *participants: str) -> str:
    conversation_id = f"conv-{new_user()}"
    await ConversationIndex(db).record(conversation_id, participants)
    return conversation_id


def ref(user_id: str, connection_id: str, edge_id: str = EDGE) -> ConnectionRef:
    return ConnectionRef(user_id=user_id, connection_id=connection_id, edge_id=edge_id)


# --- the tests --------------------------------------------------------------------------


async def test_status_change_is_acked_to_the_sender_and_broadcast_to_contacts(
    presence: Running, broker: Broker
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(presence.db, alice, bob)
    deliveries = await Deliveries.watch(broker, alice, bob)
    phone = ref(alice, "c-phone")

    await presence.opened(phone)
    await deliveries.status_seen_by(bob, alice, "available")

    for status in (*STATUSES[1:], STATUSES[0]):
        await presence.choose(phone, status)
        to, ack = await deliveries.wait(lambda to, d: d.frame.event == "status_change_ack")
        assert to == alice
        assert ack.connection_id == "c-phone"
        assert ack.frame.dump() == {"event": "status_change_ack", "status": status}
        await deliveries.status_seen_by(bob, alice, status)

    await presence.choose(phone, "available")
    await deliveries.wait(lambda to, d: d.frame.event == "status_change_ack")
    await deliveries.assert_nothing(is_status_change)


async def test_only_contacts_are_told(presence: Running, broker: Broker) -> None:
    alice, bob, stranger = new_user(), new_user(), new_user()
    await befriend(presence.db, alice, bob)
    await befriend(presence.db, bob, stranger)
    deliveries = await Deliveries.watch(broker, bob, stranger)

    await presence.opened(ref(alice, "c1"))

    await deliveries.status_seen_by(bob, alice, "available")
    await deliveries.assert_nothing(lambda to, d: to == stranger)


async def test_user_events_are_applied_in_the_order_they_were_published(
    presence: Running, broker: Broker
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(presence.db, alice, bob)
    deliveries = await Deliveries.watch(broker, bob)

    # Published back to back: applied concurrently, a close could overtake its open and
    # leave a tombstone that swallows it.
    for number in range(5):
        connection = ref(alice, f"c{number}")
        await presence.opened(connection, seconds=number)
        await presence.closed(connection, seconds=number + 0.5)

    assert await deliveries.statuses_for(bob, 10) == ["available", "offline"] * 5


async def test_redelivered_events_change_nothing(presence: Running, broker: Broker) -> None:
    alice, bob = new_user(), new_user()
    await befriend(presence.db, alice, bob)
    deliveries = await Deliveries.watch(broker, bob)
    phone = ref(alice, "c1")

    await presence.opened(phone)
    await presence.opened(phone)
    await presence.closed(phone, seconds=1)
    await presence.closed(phone, seconds=1)
    await presence.opened(phone, seconds=2)

    assert await deliveries.statuses_for(bob, 2) == ["available", "offline"]
    await deliveries.assert_nothing(is_status_change)
    assert (await presence.presences.load(alice)).connections == {}


async def test_late_close_of_an_old_connection_keeps_the_new_one_online(
    presence: Running, broker: Broker
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(presence.db, alice, bob)
    deliveries = await Deliveries.watch(broker, bob)
    old, new = ref(alice, "c-old"), ref(alice, "c-new")

    await presence.opened(old)
    await presence.opened(new, seconds=5)
    # The old connection's close was stamped before the new one opened but arrives after.
    await presence.closed(old, seconds=1)
    await presence.choose(new, "busy")

    assert await deliveries.statuses_for(bob, 2) == ["available", "busy"]
    stored = await presence.presences.load(alice)
    assert set(stored.connections) == {"c-new"}


async def test_two_edges_are_one_user(presence: Running, broker: Broker) -> None:
    alice, bob = new_user(), new_user()
    await befriend(presence.db, alice, bob)
    deliveries = await Deliveries.watch(broker, bob)
    phone, laptop = ref(alice, "c-phone", "edge-1"), ref(alice, "c-laptop", "edge-2")

    await presence.opened(phone)
    await presence.opened(laptop)
    await deliveries.status_seen_by(bob, alice, "available")
    await presence.closed(phone)
    await presence.stored(alice, lambda p: set(p.connections) == {"c-laptop"})
    await deliveries.assert_nothing(is_status_change)

    await presence.closed(laptop)
    await deliveries.status_seen_by(bob, alice, "offline")


async def test_a_new_conversation_makes_contacts_at_once(presence: Running, broker: Broker) -> None:
    alice, bob = new_user(), new_user()
    deliveries = await Deliveries.watch(broker, alice, bob)
    phone = ref(alice, "c1")
    await presence.opened(phone)
    await presence.choose(phone, "away")
    await deliveries.wait(lambda to, d: d.frame.event == "status_change_ack")
    # Alice's contacts (none) are cached for an hour by now.
    await deliveries.assert_nothing(is_status_change)

    conversation_id = await befriend(presence.db, alice, bob)
    created = ConversationCreated(conversation_id=conversation_id, participant_ids=[alice, bob])
    await presence.publish(created, created.event)
    await presence.choose(phone, "busy")

    await deliveries.status_seen_by(bob, alice, "busy")


async def test_silent_edge_is_swept_and_contacts_see_offline(
    presence: Running, broker: Broker
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(presence.db, alice, bob)
    deliveries = await Deliveries.watch(broker, bob)
    await presence.edge_alive("edge-silent", connections=0)
    await presence.opened(ref(alice, "c1", "edge-silent"), seconds=0.001)
    await deliveries.status_seen_by(bob, alice, "available")

    presence.clock.advance(29)
    assert await presence.tracker.sweep() == 0
    presence.clock.advance(2)
    assert await presence.tracker.sweep() == 1

    await deliveries.status_seen_by(bob, alice, "offline")
    assert (await presence.presences.load(alice)).connections == {}


async def test_edge_announcing_no_connections_loses_the_older_ones(
    presence: Running, broker: Broker
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(presence.db, alice, bob)
    deliveries = await Deliveries.watch(broker, bob)
    await presence.opened(ref(alice, "c1", "edge-restarted"))
    await deliveries.status_seen_by(bob, alice, "available")
    assert await presence.tracker.sweep() == 0

    # The same edge id, restarted: its first announcement says it holds nobody.
    presence.clock.advance(3)
    await presence.edge_alive("edge-restarted", connections=0)

    assert await presence.tracker.sweep() == 1
    await deliveries.status_seen_by(bob, alice, "offline")


async def test_idle_connection_expires_and_a_heartbeat_revives_it(
    presence: Running, broker: Broker
) -> None:
    alice, bob = new_user(), new_user()
    await befriend(presence.db, alice, bob)
    deliveries = await Deliveries.watch(broker, bob)
    phone = ref(alice, "c1")
    await presence.opened(phone)
    await deliveries.status_seen_by(bob, alice, "available")

    # Heartbeats keep it alive past the idle timeout while the edge keeps announcing.
    for _ in range(3):
        presence.clock.advance(60)
        await presence.edge_alive(EDGE)
        await presence.tracker.activity(phone, presence.clock.now)
        assert await presence.tracker.sweep() == 0

    presence.clock.advance(121)
    await presence.edge_alive(EDGE)
    assert await presence.tracker.sweep() == 1
    await deliveries.status_seen_by(bob, alice, "offline")

    await presence.client(phone, ClientHeartbeat(event="heartbeat"))
    await deliveries.status_seen_by(bob, alice, "available")
    assert (await presence.presences.load(alice)).last_active_at == presence.clock.now


async def test_pending_broadcast_is_sent_by_the_sweep(presence: Running, broker: Broker) -> None:
    alice, bob = new_user(), new_user()
    await befriend(presence.db, alice, bob)
    deliveries = await Deliveries.watch(broker, bob)
    # Stored as if the process died between storing the change and telling anyone.
    stored = await presence.presences.save(
        Presence(alice), Presence(alice, status="busy", announced="available"), utcnow()
    )
    assert stored is not None
    assert stored.pending == "offline"

    assert await presence.tracker.sweep() == 1

    await deliveries.status_seen_by(bob, alice, "offline")
    # The `announced` mark is written behind the broadcast: stored within one write.
    await presence.stored(alice, lambda p: p.pending is None, timeout=2)
    assert await presence.tracker.sweep() == 0
