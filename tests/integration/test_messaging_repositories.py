"""The messaging repositories against the real MongoDB-compatible server."""

import asyncio
from datetime import timedelta

import pytest
from pymongo.errors import DuplicateKeyError

from chat_core.db import Database
from chat_core.events import utcnow
from chat_core.ids import new_id
from messaging.conversations import Conversation, Conversations, create_conversation
from messaging.messages import Message, Messages
from messaging.outbox import Outbox
from messaging.read_state import ReadStates
from tests.support.users import new_user


def message(conversation_id: str, sender_id: str, client_message_id: str | None = None) -> Message:
    message_id = new_id()
    return Message(
        message_id=message_id,
        conversation_id=conversation_id,
        sender_id=sender_id,
        content=f"hello {message_id}",
        message_type="text",
        created_at=utcnow().replace(microsecond=0),
        client_message_id=client_message_id or message_id,
    )


async def test_a_conversation_and_one_membership_per_participant(db: Database) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    conversations = Conversations(db)
    created_at = utcnow().replace(microsecond=0)
    conversation, created = await create_conversation(
        conversations, alice, (alice, bob, carol), "friends", created_at
    )
    assert created
    assert await conversations.get(conversation.conversation_id) == conversation
    memberships = {doc["_id"]: doc async for doc in db.memberships.find({})}
    # Presence reads this exact shape to find contacts.
    assert memberships == {
        f"{user}|{conversation.conversation_id}": {
            "_id": f"{user}|{conversation.conversation_id}",
            "userId": user,
            "conversationId": conversation.conversation_id,
            "participantIds": [alice, bob, carol],
            "createdAt": created_at,
        }
        for user in (alice, bob, carol)
    }


async def test_the_one_to_one_of_a_pair_is_returned_again(db: Database) -> None:
    alice, bob = new_user(), new_user()
    conversations = Conversations(db)
    first, created = await create_conversation(conversations, alice, (alice, bob), None, utcnow())
    again, created_again = await create_conversation(
        conversations, bob, (bob, alice), None, utcnow()
    )
    assert created
    assert not created_again
    assert again == first
    assert await db.conversations.count_documents({}) == 1
    assert await db.memberships.count_documents({}) == 2


async def test_concurrent_one_to_one_creations_meet_on_one_conversation(db: Database) -> None:
    alice, bob = new_user(), new_user()
    conversations = Conversations(db)
    results = await asyncio.gather(
        *(create_conversation(conversations, alice, (alice, bob), None, utcnow()) for _ in range(5))
    )
    assert len({conversation.conversation_id for conversation, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    assert await db.conversations.count_documents({}) == 1
    assert await db.memberships.count_documents({}) == 2


async def test_groups_are_always_new(db: Database) -> None:
    alice, bob = new_user(), new_user()
    conversations = Conversations(db)
    first, _ = await create_conversation(conversations, alice, (alice, bob), "a", utcnow())
    second, _ = await create_conversation(conversations, alice, (alice, bob), "a", utcnow())
    assert first.conversation_id != second.conversation_id
    listed = await conversations.of_user(bob)
    assert {c.conversation_id for c in listed} == {first.conversation_id, second.conversation_id}


async def test_a_user_lists_only_their_conversations(db: Database) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    conversations = Conversations(db)
    theirs, _ = await create_conversation(conversations, alice, (alice, bob), None, utcnow())
    await create_conversation(conversations, bob, (bob, carol), None, utcnow())
    assert await conversations.of_user(alice) == [theirs]
    assert await conversations.of_user(new_user()) == []


async def test_a_client_message_id_is_unique_per_sender_and_conversation(db: Database) -> None:
    messages = Messages(db)
    conversation_id, other_conversation = new_id(), new_id()
    alice, bob = new_user(), new_user()
    first = message(conversation_id, alice, "same")
    await messages.insert(first)
    with pytest.raises(DuplicateKeyError):
        await messages.insert(message(conversation_id, alice, "same"))
    await messages.insert(message(conversation_id, bob, "same"))
    await messages.insert(message(other_conversation, alice, "same"))
    assert await messages.by_client_message_id(conversation_id, alice, "same") == first


async def test_history_is_newest_first_and_pages_by_id(db: Database) -> None:
    messages = Messages(db)
    conversation_id, alice = new_id(), new_user()
    sent = [message(conversation_id, alice) for _ in range(5)]
    for m in sent:
        await messages.insert(m)
    await messages.insert(message(new_id(), alice))
    newest_first = sent[::-1]
    page = await messages.history(conversation_id, before=None, limit=2)
    assert page == newest_first[:2]
    page = await messages.history(conversation_id, before=page[-1].message_id, limit=2)
    assert page == newest_first[2:4]
    page = await messages.history(conversation_id, before=page[-1].message_id, limit=2)
    assert page == newest_first[4:]
    assert await messages.last(conversation_id) == sent[-1]
    assert await messages.last(new_id()) is None


async def test_unread_counts_only_others_messages_after_the_position(db: Database) -> None:
    messages = Messages(db)
    conversation_id, alice, bob = new_id(), new_user(), new_user()
    from_bob = [message(conversation_id, bob) for _ in range(3)]
    for m in from_bob:
        await messages.insert(m)
    await messages.insert(message(conversation_id, alice))
    assert await messages.count_unread(conversation_id, alice, None) == 3
    assert await messages.count_unread(conversation_id, alice, from_bob[0].message_id) == 2
    assert await messages.count_unread(conversation_id, alice, from_bob[2].message_id) == 0
    assert await messages.count_unread(conversation_id, bob, None) == 1


async def test_read_position_never_moves_backwards(db: Database) -> None:
    read_states = ReadStates(db)
    conversation_id, bob = new_id(), new_user()
    older, newer = sorted(new_id() for _ in range(2))
    assert await read_states.advance(conversation_id, bob, older, utcnow())
    assert await read_states.advance(conversation_id, bob, newer, utcnow())
    assert not await read_states.advance(conversation_id, bob, older, utcnow())
    assert not await read_states.advance(conversation_id, bob, newer, utcnow())
    position = await read_states.get(conversation_id, bob)
    assert position is not None
    assert position.last_read_message_id == newer
    doc = await db.read_state.find_one({"_id": f"{conversation_id}|{bob}"})
    assert doc is not None
    assert doc["lastReadMessageId"] == newer


async def test_concurrent_reads_end_at_the_furthest_message(db: Database) -> None:
    read_states = ReadStates(db)
    conversation_id, bob = new_id(), new_user()
    ids = sorted(new_id() for _ in range(8))
    shuffled = ids[1::2] + ids[::2]
    await asyncio.gather(
        *(read_states.advance(conversation_id, bob, i, utcnow()) for i in shuffled)
    )
    position = await read_states.get(conversation_id, bob)
    assert position is not None
    assert position.last_read_message_id == ids[-1]


async def test_positions_by_member_and_by_conversation(db: Database) -> None:
    read_states = ReadStates(db)
    first, second = new_id(), new_id()
    alice, bob = new_user(), new_user()
    m1, m2 = sorted(new_id() for _ in range(2))
    await read_states.advance(first, alice, m1, utcnow())
    await read_states.advance(first, bob, m2, utcnow())
    await read_states.advance(second, alice, m2, utcnow())
    members = await read_states.of_members(first, [alice, bob, new_user()])
    assert {u: p.last_read_message_id for u, p in members.items()} == {alice: m1, bob: m2}
    mine = await read_states.of_user(alice, [first, second, new_id()])
    assert {c: p.last_read_message_id for c, p in mine.items()} == {first: m1, second: m2}


async def test_outbox_hands_out_only_entries_older_than_asked(db: Database) -> None:
    outbox = Outbox(db)
    alice, bob = new_user(), new_user()
    now = utcnow()
    old = message(new_id(), alice)
    young = message(new_id(), alice)
    await outbox.add(old, (alice, bob), now - timedelta(seconds=30))
    await outbox.add(young, (alice, bob), now)
    pending = await outbox.written_before(now - timedelta(seconds=5))
    assert [(p.message, p.participant_ids) for p in pending] == [(old, (alice, bob))]
    await outbox.remove(old.message_id)
    assert await outbox.written_before(now - timedelta(seconds=5)) == []
    assert await outbox.count() == 1


async def test_conversation_documents_round_trip(db: Database) -> None:
    conversation = Conversation(
        new_id(), (new_user(), new_user()), None, utcnow().replace(microsecond=0)
    )
    conversations = Conversations(db)
    await conversations.insert(conversation)
    assert await conversations.get(conversation.conversation_id) == conversation
    assert await conversations.get(new_id()) is None
