"""The message store and messaging repositories against the real MongoDB-compatible server."""

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from pymongo.errors import DuplicateKeyError

from chat_core.clock import utcnow
from chat_core.db import Database
from chat_core.ids import message_id_for, new_id
from chat_core.store.conversations import Conversation, Conversations
from chat_core.store.messages import OUTBOX_ENTRIES, Message, Messages
from chat_core.store.read_state import ReadMove, ReadStates
from chat_core.store.sync import SyncCursor, sync
from messaging.conversations import create_conversation
from messaging.outbox import Outbox
from tests.support.users import new_user


def message(conversation_id: str, sender_id: str, client_message_id: str | None = None) -> Message:
    message_id = new_id()
    return Message(
        message_id=message_id,
        conversation_id=conversation_id,
        seq=0,
        sender_id=sender_id,
        content=f"hello {message_id}",
        message_type="text",
        created_at=utcnow().replace(microsecond=0),
        client_message_id=client_message_id,
    )


async def test_a_conversation_is_listed_for_each_participant(db: Database) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    conversations = Conversations(db)
    created_at = utcnow().replace(microsecond=0)
    conversation, created = await create_conversation(
        conversations, alice, (alice, bob, carol), "friends", created_at
    )
    assert created
    assert await conversations.get(conversation.conversation_id) == conversation
    for user in (alice, bob, carol):
        assert await conversations.of_user(user) == [conversation]
    assert "memberships" not in await db.list_collection_names()


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


async def test_concurrent_one_to_one_creations_meet_on_one_conversation(db: Database) -> None:
    alice, bob = new_user(), new_user()
    conversations = Conversations(db)
    results = await asyncio.gather(
        *(create_conversation(conversations, alice, (alice, bob), None, utcnow()) for _ in range(5))
    )
    assert len({conversation.conversation_id for conversation, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    assert await db.conversations.count_documents({}) == 1


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


async def test_a_client_message_id_is_claimed_once_per_key(db: Database) -> None:
    messages = Messages(db)
    conversation_id, alice, bob = new_id(), new_user(), new_user()

    def keyed(sender: str, key: str, content: str) -> Message:
        return replace(
            message(conversation_id, sender, key),
            message_id=message_id_for(conversation_id, sender, key),
            content=content,
        )

    first = keyed(alice, "same", "first")
    await messages.reserve(first)
    with pytest.raises(DuplicateKeyError):
        await messages.reserve(keyed(alice, "same", "second"))
    assert await messages.get(first.message_id) == first
    await messages.reserve(keyed(bob, "same", "bob's"))


async def test_seqs_are_dense_and_unique_across_two_writers(db: Database) -> None:
    # Two repositories stand for two messaging processes: no shared in-process state.
    writers = [Messages(db), Messages(db)]
    conversation_id, alice = new_id(), new_user()
    stored = await asyncio.gather(
        *(writers[i % 2].append(message(conversation_id, alice), 0) for i in range(50))
    )
    assert all(won for _, won in stored)
    assert sorted(m.seq for m, _ in stored) == list(range(1, 51))
    entries = await writers[0].span(conversation_id, 1, 50)
    assert [e.seq for e in entries] == list(range(1, 51))
    assert await writers[1].last_seq(conversation_id, 0) == 50


async def test_spans_and_last_seq_read_by_position(db: Database) -> None:
    messages = Messages(db)
    conversation_id, alice = new_id(), new_user()
    sent = [(await messages.append(message(conversation_id, alice), 0))[0] for _ in range(5)]
    assert await messages.span(conversation_id, 2, 4) == sent[1:4]
    assert await messages.span(conversation_id, 4, 9) == sent[3:]
    assert await messages.span(conversation_id, 3, 2) == []
    # A stale hint is corrected by looking one past it.
    assert await Messages(db).last_seq(conversation_id, 2) == 5
    assert await messages.get(sent[2].message_id) == sent[2]
    assert await messages.last_seq(new_id(), 0) == 0


async def test_a_span_says_whether_the_timeline_goes_on_past_it(db: Database) -> None:
    messages = Messages(db)
    conversation_id, alice = new_id(), new_user()
    sent = [(await messages.append(message(conversation_id, alice), 0))[0] for _ in range(5)]
    assert await messages.span_and_beyond(conversation_id, 1, 4) == (sent[:4], True)
    assert await messages.span_and_beyond(conversation_id, 3, 5) == (sent[2:], False)
    assert await messages.span_and_beyond(conversation_id, -2, 0) == ([], True)
    assert await messages.span_and_beyond(conversation_id, 6, 9) == ([], False)
    assert await messages.span_and_beyond(new_id(), -19, 0) == ([], False)


async def test_many_conversations_are_confirmed_in_one_go(db: Database) -> None:
    alice, bob = new_user(), new_user()
    conversations, messages = Conversations(db), Messages(db)
    stale, current, empty = [
        (await create_conversation(conversations, alice, (alice, bob), name, utcnow()))[0]
        for name in ("stale", "current", "empty")
    ]
    for conversation in (stale, current):
        stored, _ = await messages.append(message(conversation.conversation_id, bob), 0)
        await conversations.advance(stored)
    # Two sends another process has not recorded on the conversation yet.
    other = Messages(db)
    await other.append(message(stale.conversation_id, alice), 0)
    newest, _ = await other.append(message(stale.conversation_id, alice), 0)
    hints = [await conversations.get(c.conversation_id) for c in (stale, current, empty)]
    assert all(hint is not None for hint in hints)

    confirmed = await conversations.all_confirmed([h for h in hints if h], Messages(db))

    assert [(c.name, c.last_seq) for c in confirmed] == [("stale", 3), ("current", 1), ("empty", 0)]
    assert confirmed[0].last_message == newest
    assert confirmed[2].last_message is None


async def test_the_conversation_keeps_its_last_message_and_never_goes_back(db: Database) -> None:
    alice, bob = new_user(), new_user()
    conversations, messages = Conversations(db), Messages(db)
    conversation, _ = await create_conversation(conversations, alice, (alice, bob), None, utcnow())
    cid = conversation.conversation_id
    first, _ = await messages.append(message(cid, alice), 0)
    second, _ = await messages.append(message(cid, bob), 0)
    await conversations.advance(second)
    await conversations.advance(first)
    stored = await conversations.get(cid)
    assert stored is not None
    assert (stored.last_seq, stored.last_message) == (2, second)
    third, _ = await messages.append(message(cid, bob), 0)
    # Not yet recorded on the conversation (a send in flight): confirmed from the timeline.
    (confirmed,) = await conversations.all_confirmed([stored], messages)
    assert (confirmed.last_seq, confirmed.last_message) == (3, third)
    # Another process's late write can move the hint back; reading repairs it.
    await Conversations(db).advance(first)
    regressed = await conversations.get(cid)
    assert regressed is not None
    assert regressed.last_seq == 1
    (repaired,) = await conversations.all_confirmed([regressed], Messages(db))
    assert (repaired.last_seq, repaired.last_message) == (3, third)


async def test_sync_from_a_cursor_returns_what_followed_in_every_conversation(
    db: Database,
) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    conversations, messages = Conversations(db), Messages(db)
    one, _ = await create_conversation(conversations, alice, (alice, bob), None, utcnow())
    two, _ = await create_conversation(conversations, carol, (carol, alice), "g", utcnow())
    seen, _ = await messages.append(message(one.conversation_id, bob), 0)
    cursor = SyncCursor(at=seen.created_at, seqs={one.conversation_id: seen.seq})
    later = [(await messages.append(message(c.conversation_id, bob), 0))[0] for c in (one, two)]
    page = await sync(
        alice, cursor, conversations=conversations, messages=messages, limit=10, now=utcnow()
    )
    assert set(page.messages) >= set(later)
    assert seen not in page.messages
    assert not page.has_more
    # Nothing new: the next cursor answers nothing it must (duplicates are allowed).
    again = await sync(
        alice,
        SyncCursor.decode(page.next.encode()),
        conversations=conversations,
        messages=messages,
        limit=10,
        now=utcnow(),
    )
    assert set(again.messages) <= set(later)


async def test_sync_pages_without_gaps(db: Database) -> None:
    alice, bob = new_user(), new_user()
    conversations, messages = Conversations(db), Messages(db)
    one, _ = await create_conversation(conversations, alice, (alice, bob), None, utcnow())
    two, _ = await create_conversation(conversations, alice, (alice, bob), "g", utcnow())
    start = utcnow() - timedelta(seconds=1)
    sent = [
        (await messages.append(message(c.conversation_id, bob), 0))[0]
        for c in (one, two, one, two, one)
    ]
    cursor = SyncCursor(at=start)
    seen: list[Message] = []
    for _ in range(10):
        page = await sync(
            alice, cursor, conversations=conversations, messages=messages, limit=2, now=utcnow()
        )
        seen.extend(page.messages)
        cursor = page.next
        if not page.has_more:
            break
    assert set(seen) == set(sent)
    for c in (one, two):
        mine = [m.seq for m in seen if m.conversation_id == c.conversation_id]
        assert mine == sorted(mine)


async def test_read_position_never_moves_backwards(db: Database) -> None:
    read_states = ReadStates(db)
    conversation_id, bob = new_id(), new_user()
    assert await read_states.advance(conversation_id, bob, 3, "m3", utcnow())
    assert await read_states.advance(conversation_id, bob, 7, "m7", utcnow())
    assert not await read_states.advance(conversation_id, bob, 3, "m3", utcnow())
    assert not await read_states.advance(conversation_id, bob, 7, "m7", utcnow())
    position = await read_states.get(conversation_id, bob)
    assert position is not None
    assert (position.read_seq, position.last_read_message_id) == (7, "m7")


async def test_concurrent_reads_end_at_the_furthest_message(db: Database) -> None:
    read_states = ReadStates(db)
    conversation_id, bob = new_id(), new_user()
    shuffled = [2, 8, 4, 6, 1, 7, 3, 5]
    await asyncio.gather(
        *(read_states.advance(conversation_id, bob, s, f"m{s}", utcnow()) for s in shuffled)
    )
    position = await read_states.get(conversation_id, bob)
    assert position is not None
    assert position.read_seq == 8


async def test_positions_by_member_and_by_conversation(db: Database) -> None:
    read_states = ReadStates(db)
    first, second = new_id(), new_id()
    alice, bob = new_user(), new_user()
    await read_states.advance(first, alice, 1, "m1", utcnow())
    await read_states.advance(first, bob, 2, "m2", utcnow())
    await read_states.advance(second, alice, 2, "m2", utcnow())
    members = await read_states.of_members(first, [alice, bob, new_user()])
    assert {u: p.read_seq for u, p in members.items()} == {alice: 1, bob: 2}
    mine = await read_states.of_user(alice, [first, second, new_id()])
    assert {c: p.read_seq for c, p in mine.items()} == {first: 1, second: 2}


async def test_outbox_hands_out_only_entries_older_than_asked(db: Database) -> None:
    outbox = Outbox(db)
    alice, bob = new_user(), new_user()
    now = utcnow()
    old = message(new_id(), alice)
    young = message(new_id(), alice)
    await outbox.add(old, (alice, bob), now - timedelta(seconds=30))
    await outbox.add(young, (alice, bob), now)
    for entry in (old, young):
        outbox.settled(entry.message_id)
    pending = await outbox.written_before(now - timedelta(seconds=5))
    assert [(p.message, p.participant_ids) for p in pending] == [(old, (alice, bob))]
    await outbox.remove(old.message_id)
    assert await outbox.written_before(now - timedelta(seconds=5)) == []
    assert await db.timeline.count_documents(OUTBOX_ENTRIES) == 1


async def test_conversation_documents_round_trip(db: Database) -> None:
    conversation = Conversation(
        new_id(), (new_user(), new_user()), None, utcnow().replace(microsecond=0)
    )
    conversations = Conversations(db)
    await conversations.insert(conversation)
    assert await conversations.get(conversation.conversation_id) == conversation
    assert await conversations.get(new_id()) is None


async def test_many_positions_move_forward_in_one_go_never_back(db: Database) -> None:
    read_states = ReadStates(db)
    conversation_id, ahead, behind, new = new_id(), new_user(), new_user(), new_user()
    await read_states.advance(conversation_id, ahead, 9, "m9", utcnow())
    await read_states.advance(conversation_id, behind, 2, "m2", utcnow())
    await read_states.advance_many(
        [
            ReadMove(conversation_id, ahead, 5, "m5", utcnow()),
            ReadMove(conversation_id, behind, 4, "m4", utcnow()),
            ReadMove(conversation_id, behind, 6, "m6", utcnow()),
            ReadMove(conversation_id, new, 3, "m3", utcnow()),
        ]
    )
    positions = await read_states.of_members(conversation_id, [ahead, behind, new])
    assert {user: (p.read_seq, p.last_read_message_id) for user, p in positions.items()} == {
        ahead: (9, "m9"),
        behind: (6, "m6"),
        new: (3, "m3"),
    }
