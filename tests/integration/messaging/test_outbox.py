"""The outbox's batched removal: confirmed entries are never relayed, and go at the flush."""

from datetime import timedelta

from chat_core.clock import utcnow
from chat_core.db import Database
from chat_core.ids import new_id
from chat_core.store.messages import OUTBOX_ENTRIES, Message
from messaging.outbox import Outbox


def message() -> Message:
    message_id = new_id()
    return Message(
        message_id=message_id,
        conversation_id=new_id(),
        seq=0,
        sender_id="+84912345678",
        content="hi",
        message_type="text",
        created_at=utcnow().replace(microsecond=0),
        client_message_id=message_id,
    )


async def test_published_entries_are_not_relayed_and_go_at_the_next_flush(db: Database) -> None:
    outbox = Outbox(db)
    confirmed, unconfirmed = message(), message()
    written = utcnow() - timedelta(minutes=1)
    await outbox.add(confirmed, ("+84912345678",), written)
    await outbox.add(unconfirmed, ("+84912345678",), written)
    for entry in (confirmed, unconfirmed):
        outbox.settled(entry.message_id)

    outbox.published(confirmed.message_id)

    pending = await outbox.written_before(utcnow())
    assert [p.message.message_id for p in pending] == [unconfirmed.message_id]
    assert await db.timeline.count_documents(OUTBOX_ENTRIES) == 2
    await outbox.flush()
    assert await db.timeline.count_documents(OUTBOX_ENTRIES) == 1
    await outbox.flush()
    assert await db.timeline.count_documents(OUTBOX_ENTRIES) == 1


async def test_entries_of_requests_still_running_here_are_left_to_them(db: Database) -> None:
    outbox = Outbox(db)
    slow = message()
    await outbox.add(slow, ("+84912345678",), utcnow() - timedelta(minutes=1))
    assert await outbox.written_before(utcnow()) == []
    outbox.settled(slow.message_id)
    assert [p.message.message_id for p in await outbox.written_before(utcnow())] == [
        slow.message_id
    ]
    # Another process's relay (no shared memory) sees it at once.
    assert len(await Outbox(db).written_before(utcnow())) == 1
