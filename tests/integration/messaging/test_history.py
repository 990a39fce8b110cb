"""History pages by seq, read through one process while another appends."""

from chat_core.clock import utcnow
from chat_core.db import Database
from chat_core.ids import new_id
from chat_core.store.conversations import Conversations
from chat_core.store.messages import Message, Messages
from chat_core.store.read_state import ReadStates
from messaging.conversations import create_conversation
from messaging.history import Page, Reader
from messaging.members import Members
from tests.support.users import new_user


def _message(conversation_id: str, sender_id: str) -> Message:
    return Message(
        message_id=new_id(),
        conversation_id=conversation_id,
        seq=0,
        sender_id=sender_id,
        content="hello",
        message_type="text",
        created_at=utcnow(),
    )


async def test_pages_see_what_another_process_appended_since(db: Database) -> None:
    alice, bob = new_user(), new_user()
    conversations, messages = Conversations(db), Messages(db)
    reader = Reader(Members(conversations.get, 100), conversations, messages, ReadStates(db))
    conversation, _ = await create_conversation(conversations, alice, (alice, bob), None, utcnow())
    cid = conversation.conversation_id
    mine = [(await messages.append(_message(cid, alice), 0))[0] for _ in range(3)]
    page = await reader.before(alice, cid, before=None, limit=2)
    assert (page.entries, page.has_more) == (mine[:0:-1], True)

    # Another process appends; neither this process nor the conversation document knows yet.
    other = Messages(db)
    theirs = [(await other.append(_message(cid, bob), 3))[0] for _ in range(4)]
    timeline = mine + theirs

    newest = await reader.before(alice, cid, before=None, limit=5)
    assert (newest.entries, newest.has_more) == (timeline[:1:-1], True)
    whole = await reader.before(alice, cid, before=None, limit=7)
    assert (whole.entries, whole.has_more) == (timeline[::-1], False)
    older = await reader.before(alice, cid, before=timeline[3].message_id, limit=2)
    assert (older.entries, older.has_more) == (timeline[2:0:-1], True)
    middle = await reader.after(alice, cid, after_seq=2, limit=3)
    assert (middle.entries, middle.has_more) == (timeline[2:5], True)
    end = await reader.after(alice, cid, after_seq=4, limit=3)
    assert (end.entries, end.has_more) == (timeline[4:], False)
    assert await reader.after(alice, cid, after_seq=7, limit=3) == Page([], False)
