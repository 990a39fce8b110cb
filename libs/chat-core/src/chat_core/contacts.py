"""Who shares a conversation with whom, readable by `_id`: one document per user.

`user_conversations`, `_id` = user id, `conversations` = {conversationId: [participantIds]}.
Messaging writes it when a conversation is created; presence reads it for contacts and
messaging for a user's conversation list. A lookup by `_id` is what FerretDB pushes down to
SQLite; the per-membership documents it replaces were found by scanning.
"""

import asyncio
from collections.abc import Iterable

from chat_core.db import Database, upsert_by_id
from chat_core.keyed_lock import KeyedLock


class ConversationIndex:
    def __init__(self, db: Database) -> None:
        self._docs = db.user_conversations
        # FerretDB updates are read-then-write: two conversations of one user recorded at
        # once could lose one. Serialised per user within this process; on MongoDB each
        # `$set` of its own field is atomic, so several writers are safe there.
        self._locks = KeyedLock()

    async def record(self, conversation_id: str, participant_ids: Iterable[str]) -> None:
        """Idempotent: recording a conversation again changes nothing."""
        participants = list(participant_ids)
        await asyncio.gather(
            *(self._record_for(user_id, conversation_id, participants) for user_id in participants)
        )

    async def _record_for(
        self, user_id: str, conversation_id: str, participants: list[str]
    ) -> None:
        update = {"$set": {f"conversations.{conversation_id}": participants}}
        async with self._locks(user_id):
            await upsert_by_id(self._docs, user_id, update)

    async def conversations_of(self, user_id: str) -> dict[str, list[str]]:
        doc = await self._docs.find_one({"_id": user_id})
        conversations: dict[str, list[str]] = (doc or {}).get("conversations") or {}
        return conversations

    async def contacts_of(self, user_id: str) -> frozenset[str]:
        everyone = {
            p
            for participants in (await self.conversations_of(user_id)).values()
            for p in participants
        }
        everyone.discard(user_id)
        return frozenset(everyone)
