"""Typing and membership rules with an in-memory loader (pure logic, no broker)."""

from datetime import UTC, datetime

from chat_core.broker import TYPING_TTL_SECONDS
from chat_core.events import ErrorFrame, TypingIndicator
from chat_core.store.conversations import Conversation
from messaging.members import Members
from messaging.throttle import Throttle
from messaging.typing_indicators import on_typing

CID = "65a1b2c3d4e5f60718293a4c"
ALICE, BOB, CAROL, MALLORY = "+84912345678", "+84987654321", "+84355555555", "+84366666666"


class Loader:
    def __init__(self, *conversations: Conversation) -> None:
        self.by_id = {c.conversation_id: c for c in conversations}
        self.loads = 0

    async def __call__(self, conversation_id: str) -> Conversation | None:
        self.loads += 1
        return self.by_id.get(conversation_id)


def group(conversation_id: str = CID) -> Conversation:
    return Conversation(conversation_id, (ALICE, BOB, CAROL), "g", datetime.now(UTC))


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_typing_goes_to_the_others_with_a_short_ttl() -> None:
    members = Members(Loader(group()), 10)
    deliveries = await on_typing(ALICE, "conn-1", CID, members=members, throttle=Throttle(1.0))
    assert len(deliveries) == 1
    (delivery,) = deliveries
    assert delivery.user_ids == (BOB, CAROL)
    assert delivery.frame == TypingIndicator(conversation_id=CID, user_id=ALICE)
    assert delivery.connection_id is None
    assert delivery.ttl == TYPING_TTL_SECONDS


async def test_an_outsider_gets_an_error_on_their_own_socket_and_nobody_hears() -> None:
    members = Members(Loader(group()), 10)
    deliveries = await on_typing(MALLORY, "conn-9", CID, members=members, throttle=Throttle(1.0))
    assert len(deliveries) == 1
    (delivery,) = deliveries
    assert delivery.user_ids == (MALLORY,)
    assert delivery.connection_id == "conn-9"
    assert isinstance(delivery.frame, ErrorFrame)
    assert CID in delivery.frame.message


async def test_unknown_and_foreign_conversations_get_the_same_answer() -> None:
    members = Members(Loader(group()), 10)
    throttle = Throttle(1.0)
    foreign = await on_typing(MALLORY, "c", CID, members=members, throttle=throttle)
    unknown_id = "ffffffffffffffffffffffff"
    unknown = await on_typing(MALLORY, "c", unknown_id, members=members, throttle=throttle)
    assert isinstance(foreign[0].frame, ErrorFrame)
    assert isinstance(unknown[0].frame, ErrorFrame)
    assert foreign[0].frame.message.replace(CID, "X") == unknown[0].frame.message.replace(
        unknown_id, "X"
    )


async def test_a_fast_typist_is_throttled_per_conversation() -> None:
    other = "65a1b2c3d4e5f60718293a4d"
    members = Members(Loader(group(), group(other)), 10)
    clock = Clock()
    throttle = Throttle(1.0, clock)
    first = await on_typing(ALICE, "c", CID, members=members, throttle=throttle)
    again = await on_typing(ALICE, "c", CID, members=members, throttle=throttle)
    elsewhere = await on_typing(ALICE, "c", other, members=members, throttle=throttle)
    someone_else = await on_typing(BOB, "c", CID, members=members, throttle=throttle)
    clock.now = 1.5
    later = await on_typing(ALICE, "c", CID, members=members, throttle=throttle)
    assert [len(d) for d in (first, again, elsewhere, someone_else, later)] == [1, 0, 1, 1, 1]


async def test_participants_are_loaded_once_and_unknown_ids_are_not_cached() -> None:
    loader = Loader(group())
    members = Members(loader, 10)
    assert await members.of(CID) == (ALICE, BOB, CAROL)
    assert await members.of(CID) == (ALICE, BOB, CAROL)
    assert loader.loads == 1
    assert await members.of("ffffffffffffffffffffffff") is None
    loader.by_id["ffffffffffffffffffffffff"] = group("ffffffffffffffffffffffff")
    assert await members.of("ffffffffffffffffffffffff") is not None


async def test_the_cache_evicts_the_least_recently_used() -> None:
    ids = [f"{n:024x}" for n in range(3)]
    loader = Loader(*(group(i) for i in ids))
    members = Members(loader, 2)
    await members.of(ids[0])
    await members.of(ids[1])
    await members.of(ids[0])
    await members.of(ids[2])
    loads = loader.loads
    await members.of(ids[0])
    assert loader.loads == loads
    await members.of(ids[1])
    assert loader.loads == loads + 1
