"""Conversations and who is in them, fixed at creation (with chat_core.contacts per user)."""

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo.errors import BulkWriteError, DuplicateKeyError

from chat_core.contacts import ConversationIndex
from chat_core.db import Collection, Database, Document
from chat_core.ids import is_vn_mobile, new_id, normalize_user_id
from chat_core.settings import AuthMode
from messaging.timestamps import to_milliseconds

_DUPLICATE_KEY = 11000
_MAX_USER_ID_LENGTH = 128


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    participant_ids: tuple[str, ...]
    name: str | None
    created_at: datetime

    def to_document(self) -> Document:
        return {
            "_id": self.conversation_id,
            "participantIds": list(self.participant_ids),
            "name": self.name,
            "createdAt": self.created_at,
        }

    @classmethod
    def from_document(cls, doc: Document) -> "Conversation":
        return cls(
            conversation_id=doc["_id"],
            participant_ids=tuple(doc["participantIds"]),
            name=doc.get("name"),
            created_at=doc["createdAt"],
        )


class InvalidParticipant(ValueError):
    def __init__(self, index: int | None, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


def user_id_check(auth_mode: AuthMode) -> Callable[[str], bool]:
    """The same rule the edge applies to a user id in a WebSocket path."""
    if auth_mode is AuthMode.DEV:
        return is_vn_mobile
    return lambda user_id: 0 < len(user_id) <= _MAX_USER_ID_LENGTH and user_id.isprintable()


def participants_of(
    creator_id: str,
    requested: Sequence[str],
    *,
    is_valid: Callable[[str], bool],
    max_participants: int,
) -> tuple[str, ...]:
    """Creator first, then the requested users in order, each once."""
    participants = [creator_id]
    for index, raw in enumerate(requested):
        user_id = normalize_user_id(raw)
        if not is_valid(user_id):
            raise InvalidParticipant(index, f"not a valid user id: {raw!r}")
        if user_id not in participants:
            participants.append(user_id)
    if len(participants) < 2:
        raise InvalidParticipant(None, "participantIds must name at least one user besides you")
    if len(participants) > max_participants:
        raise InvalidParticipant(
            None, f"a conversation has at most {max_participants} participants"
        )
    return tuple(participants)


def one_to_one_id(first: str, second: str) -> str:
    """Deterministic per pair, so concurrent creations of one pair meet on the same _id.

    24 hex digits like every other conversation id, so path validation treats it the same.
    """
    low, high = sorted((first, second))
    return hashlib.sha256(f"one-to-one|{low}|{high}".encode()).hexdigest()[:24]


def is_one_to_one(participant_ids: Sequence[str], name: str | None) -> bool:
    # A named conversation of two is a (small) group: users ask for it on purpose.
    return len(participant_ids) == 2 and name is None


class Conversations:
    def __init__(self, db: Database) -> None:
        self._conversations: Collection = db.conversations
        self._memberships: Collection = db.memberships
        self._index = ConversationIndex(db)

    async def insert(self, conversation: Conversation) -> None:
        """Raises DuplicateKeyError when the id exists (the one-to-one of a known pair)."""
        await self._conversations.insert_one(conversation.to_document())

    async def add_memberships(self, conversation: Conversation) -> None:
        """Idempotent: memberships never change, so existing ones are left as they are."""
        docs = [
            {
                "_id": f"{user_id}|{conversation.conversation_id}",
                "userId": user_id,
                "conversationId": conversation.conversation_id,
                "participantIds": list(conversation.participant_ids),
                "createdAt": conversation.created_at,
            }
            for user_id in conversation.participant_ids
        ]
        try:
            await self._memberships.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            if any(e.get("code") != _DUPLICATE_KEY for e in error.details["writeErrors"]):
                raise
        await self._index.record(conversation.conversation_id, conversation.participant_ids)

    async def get(self, conversation_id: str) -> Conversation | None:
        doc = await self._conversations.find_one({"_id": conversation_id})
        return Conversation.from_document(doc) if doc else None

    async def of_user(self, user_id: str) -> list[Conversation]:
        ids = await self._index.conversations_of(user_id)
        # One `_id` lookup each: FerretDB pushes down `_id` equality, not `$in`.
        found = await asyncio.gather(*(self.get(conversation_id) for conversation_id in ids))
        return [conversation for conversation in found if conversation is not None]


async def create_conversation(
    conversations: Conversations,
    creator_id: str,
    participant_ids: tuple[str, ...],
    name: str | None,
    now: datetime,
) -> tuple[Conversation, bool]:
    """The conversation and whether it is new; a known pair's one-to-one is returned again.

    The conversation is written before its memberships: a crash in between leaves a
    conversation nobody lists yet, which the next creation of a one-to-one repairs.
    """
    one_to_one = is_one_to_one(participant_ids, name)
    conversation = Conversation(
        conversation_id=one_to_one_id(*participant_ids) if one_to_one else new_id(),
        participant_ids=participant_ids,
        name=name,
        created_at=to_milliseconds(now),
    )
    created = True
    try:
        await conversations.insert(conversation)
    except DuplicateKeyError:
        if not one_to_one:
            raise
        existing = await conversations.get(conversation.conversation_id)
        if existing is None:
            raise
        conversation, created = existing, False
    await conversations.add_memberships(conversation)
    return conversation, created
