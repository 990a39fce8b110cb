"""Store versions 1 -> 2 -> 3.

Version 2 gives every stored message its seq, in message-id (creation) order. Version 3
finds a message by the id its idempotency key derives to (`chat_core.ids.message_id_for`):
for each message stored under another id, an alias `{_id: derived, aliasOf: messageId}` in
`messages`, so a retry of a send from before the upgrade still answers the first message.

Version 1 kept messages by id only, read positions as message ids, and a `memberships`
collection nobody read. Idempotent and resumable: every write is an insert that tolerates
its own earlier run or a `$set` of a value that follows from the data, and a conversation
is marked done only once all of its messages are placed. Run with writers stopped (see
docs/message-store.md, 'Upgrading'); reads of a version-1 database scan collections, which
is acceptable once, here, and nowhere else.
"""

import contextlib
from collections import defaultdict
from collections.abc import Callable

from pymongo.errors import DuplicateKeyError

from chat_core.db import Database
from chat_core.ids import message_id_for
from chat_core.store import schema
from chat_core.store.messages import ALIAS_OF, Message, outbox_entry_id

_DONE = "seqVersion"
_SEQ_VERSION = 2
Progress = Callable[[str], None]


async def migrate(db: Database, progress: Progress) -> dict[str, int]:
    version = await schema.stored_version(db)
    counts = {"conversations": 0, "messages": 0, "readPositions": 0, "aliases": 0}
    if version == schema.CURRENT_VERSION:
        progress(f"already at store version {schema.CURRENT_VERSION}; nothing to do")
        return counts
    if version is not None and version > schema.CURRENT_VERSION:
        raise schema.SchemaMismatch(f"store version {version} is newer than this release")
    if version is None or version < 2:
        counts.update(await _to_version_2(db, progress))
    counts["aliases"] = await _to_version_3(db)
    progress(f"aliases for idempotency keys: {counts['aliases']}")
    await schema.stamp(db)
    progress(f"stamped store version {schema.CURRENT_VERSION}")
    return counts


async def _to_version_2(db: Database, progress: Progress) -> dict[str, int]:
    ids_by_conversation: dict[str, list[str]] = defaultdict(list)
    async for doc in db.messages.find({}, {"conversationId": 1}):
        ids_by_conversation[doc["conversationId"]].append(doc["_id"])
    conversations = [doc async for doc in db.conversations.find({}, {_DONE: 1})]
    total = sum(map(len, ids_by_conversation.values()))
    progress(f"{len(conversations)} conversations, {total} messages")
    counts = {"conversations": 0, "messages": 0, "readPositions": 0}
    for index, conversation in enumerate(conversations, 1):
        if conversation.get(_DONE) == _SEQ_VERSION:
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
    await schema.stamp(db, _SEQ_VERSION)
    progress("stamped store version 2")
    return counts


async def _to_version_3(db: Database) -> int:
    """Version 2's by-id documents and outbox entries join the timeline's collection (so a
    send writes one command), with an alias for each message whose idempotency key now
    derives to another id. Inserts that tolerate an earlier, interrupted run; the old
    collections go last. Returns how many aliases were made."""
    made = 0
    async for doc in db.messages.find({}):
        with contextlib.suppress(DuplicateKeyError):
            await db.timeline.insert_one(doc)
        key = doc.get("clientMessageId")
        if ALIAS_OF in doc or not key or key == doc["_id"]:
            continue  # no key, or one the server made up for a send that had none
        derived = message_id_for(doc["conversationId"], doc["senderId"], key)
        if derived == doc["_id"]:
            continue
        try:
            await db.timeline.insert_one({"_id": derived, ALIAS_OF: doc["_id"]})
        except DuplicateKeyError:
            continue
        made += 1
    async for entry in db.outbox.find({}):
        with contextlib.suppress(DuplicateKeyError):
            await db.timeline.insert_one({**entry, "_id": outbox_entry_id(entry["_id"])})
    for name in ("messages", "outbox", "client_ids"):
        await db.drop_collection(name)
    return made


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
    update: dict[str, object] = {_DONE: _SEQ_VERSION, "lastSeq": len(message_ids)}
    if last is not None:
        update["lastMessage"] = last.to_document()
        update["lastActivityAt"] = last.created_at
    await db.conversations.update_one({"_id": conversation_id}, {"$set": update})
    return len(message_ids)


async def _read_positions(db: Database) -> int:
    converted = 0
    async for doc in db.read_state.find({}):
        if "readSeq" in doc:
            continue
        read = await db.messages.find_one({"_id": doc.get("lastReadMessageId", "")})
        seq = read.get("seq", 0) if read is not None else 0
        await db.read_state.update_one({"_id": doc["_id"]}, {"$set": {"readSeq": seq}})
        converted += 1
    return converted
