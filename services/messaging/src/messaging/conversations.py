"""Creating conversations: who may be in one, and one one-to-one per pair."""

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from chat_core.clock import to_milliseconds
from chat_core.ids import is_user_id, is_vn_mobile, new_id, normalize_user_id
from chat_core.settings import AuthMode
from chat_core.store.conversations import Conversation, Conversations


class InvalidParticipant(ValueError):
    def __init__(self, index: int | None, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


def user_id_check(auth_mode: AuthMode) -> Callable[[str], bool]:
    """The same rule the edge applies to a user id in a WebSocket path."""
    if auth_mode is AuthMode.DEV:
        return is_vn_mobile
    return is_user_id


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
    Ids joined with `|` are ambiguous once an id contains one ("a|b" + "c" and "a" + "b|c"
    both gave `one-to-one|a|b|c`, so a user was handed another pair's conversation). Such
    pairs are length-prefixed instead; every other pair (all of dev mode's phone numbers,
    Firebase's generated uids) keeps the id it always had, so stored ids stay valid. The
    two spellings cannot meet: the old one has `|` where the new one has `#`.
    """
    low, high = sorted((first, second))
    if "|" in low or "|" in high:
        key = f"one-to-one#{len(low)}:{low}{len(high)}:{high}"
    else:
        key = f"one-to-one|{low}|{high}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def is_one_to_one(participant_ids: Sequence[str], name: str | None) -> bool:
    # A named conversation of two is a (small) group: users ask for it on purpose.
    return len(participant_ids) == 2 and name is None


async def create_conversation(
    conversations: Conversations,
    creator_id: str,
    participant_ids: tuple[str, ...],
    name: str | None,
    now: datetime,
) -> tuple[Conversation, bool]:
    """The conversation and whether it is new; a known pair's one-to-one is returned again.

    The conversation is written before the members' indexes: a crash in between leaves a
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
    await conversations.index.record(conversation.conversation_id, conversation.participant_ids)
    return conversation, created
