"""The outbox's batched removal: confirmed entries are never relayed, and go at the flush."""

from datetime import timedelta

from chat_core.db import Database
from chat_core.events import utcnow
from chat_core.ids import new_id
from chat_core.store.messages import Message
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

    outbox.published(confirmed.message_id)

    pending = await outbox.written_before(utcnow())
    assert [p.message.message_id for p in pending] == [unconfirmed.message_id]
    assert await outbox.count() == 2
    await outbox.flush()
    assert await outbox.count() == 1
    await outbox.flush()
    assert await outbox.count() == 1
