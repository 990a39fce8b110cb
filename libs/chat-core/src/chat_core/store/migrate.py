"""Store version 1 -> 2: give every stored message its seq, in message-id (creation) order.

Version 1 kept messages by id only, read positions as message ids, and a `memberships`
collection nobody read. Idempotent and resumable: every write is an insert that tolerates
its own earlier run or a `$set` of a value that follows from the data, and a conversation
is marked done only once all of its messages are placed. Run with writers stopped (see
docs/message-store.md, 'Upgrading'); reads of a version-1 database scan collections, which
is acceptable once, here, and nowhere else.
"""

from collections import defaultdict
from collections.abc import Callable

from pymongo.errors import DuplicateKeyError

from chat_core.db import Database
from chat_core.store import schema
from chat_core.store.messages import Message, Messages

_DONE = "seqVersion"
Progress = Callable[[str], None]


async def migrate(db: Database, progress: Progress) -> dict[str, int]:
    version = await schema.stored_version(db)
    if version == schema.CURRENT_VERSION:
        progress("already at store version 2; nothing to do")
        return {"conversations": 0, "messages": 0, "readPositions": 0}
    if version is not None and version > schema.CURRENT_VERSION:
        raise schema.SchemaMismatch(f"store version {version} is newer than this release")
    ids_by_conversation: dict[str, list[str]] = defaultdict(list)
    async for doc in db.messages.find({}, {"conversationId": 1}):
        ids_by_conversation[doc["conversationId"]].append(doc["_id"])
    conversations = [doc async for doc in db.conversations.find({}, {_DONE: 1})]
    total = sum(map(len, ids_by_conversation.values()))
    progress(f"{len(conversations)} conversations, {total} messages")
    counts = {"conversations": 0, "messages": 0, "readPositions": 0}
    for index, conversation in enumerate(conversations, 1):
        if conversation.get(_DONE) == schema.CURRENT_VERSION:
            continue
        placed = await _place(
            db, conversation["_id"], sorted(ids_by_conversation[conversation["_id"]])
        )
        counts["conversations"] += 1
        counts["messages"] += placed
        if index % 100 == 0 or index == len(conversations):
            progress(f"conversations {index}/{len(conversations)}")
    counts["readPositions"] = await _read_positions(db)
    progress(f"read positions: {counts['readPositions']} converted")
    await db.drop_collection("memberships")
    for name in ("history", "idempotent_send"):
        if name in {index["name"] async for index in await db.messages.list_indexes()}:
            await db.messages.drop_index(name)
    await schema.stamp(db)
    progress("stamped store version 2")
    return counts


async def _place(db: Database, conversation_id: str, message_ids: list[str]) -> int:
    last: Message | None = None
    for seq, message_id in enumerate(message_ids, 1):
        doc = await db.messages.find_one({"_id": message_id})
        if doc is None:
            continue
        message = Message.from_document({**doc, "seq": seq})
        if doc.get("seq") != seq:
            await db.messages.update_one({"_id": message_id}, {"$set": {"seq": seq}})
        try:
            await db.timeline.insert_one(message.timeline_document())
        except DuplicateKeyError:
            pass  # placed by an earlier, interrupted run
        if message.client_message_id and message.client_message_id != message_id:
            key = f"{conversation_id}|{message.sender_id}|{message.client_message_id}"
            try:
                await db.client_ids.insert_one(
                    {"_id": key, "messageId": message_id, "claimedAt": message.created_at}
                )
            except DuplicateKeyError:
                pass
        last = message
    update: dict[str, object] = {_DONE: schema.CURRENT_VERSION, "lastSeq": len(message_ids)}
    if last is not None:
        update["lastMessage"] = last.to_document()
        update["lastActivityAt"] = last.created_at
    await db.conversations.update_one({"_id": conversation_id}, {"$set": update})
    return len(message_ids)


async def _read_positions(db: Database) -> int:
    messages = Messages(db)
    converted = 0
    async for doc in db.read_state.find({}):
        if "readSeq" in doc:
            continue
        read = await messages.get(doc.get("lastReadMessageId", ""))
        seq = read.seq if read is not None else 0
        await db.read_state.update_one({"_id": doc["_id"]}, {"$set": {"readSeq": seq}})
        converted += 1
    return converted
