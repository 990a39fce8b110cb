"""The per-user conversation index that contacts and conversation lists are read from."""

import asyncio

from chat_core.contacts import ConversationIndex
from chat_core.db import Database


async def test_contacts_are_everyone_sharing_a_conversation(db: Database) -> None:
    index = ConversationIndex(db)
    await index.record("c1", ["alice", "bob"])
    await index.record("c2", ["alice", "carol", "dave"])
    await index.record("c3", ["bob", "erin"])

    assert await index.contacts_of("alice") == {"bob", "carol", "dave"}
    assert await index.contacts_of("bob") == {"alice", "erin"}
    assert await index.contacts_of("nobody") == frozenset()
    assert set(await index.conversations_of("alice")) == {"c1", "c2"}


async def test_recording_again_changes_nothing(db: Database) -> None:
    index = ConversationIndex(db)
    await index.record("c1", ["alice", "bob"])
    before = await db.user_conversations.find_one({"_id": "alice"})
    await index.record("c1", ["alice", "bob"])
    assert await db.user_conversations.find_one({"_id": "alice"}) == before


async def test_many_conversations_of_one_user_at_once_are_all_kept(db: Database) -> None:
    # FerretDB updates are read-then-write; without per-user serialisation some are lost.
    index = ConversationIndex(db)
    await asyncio.gather(*(index.record(f"c{i}", ["alice", f"friend{i}"]) for i in range(30)))
    assert await index.contacts_of("alice") == {f"friend{i}" for i in range(30)}
