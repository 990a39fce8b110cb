"""Presence held in memory and written behind, against the real database.

What must hold: a change is in the database when its future completes (the consumer acks
only then), concurrent changes go as few bulk writes, a user changed by another process
since it was read is not overwritten but dropped and reloaded, and a new owner starts from
what the previous one stored.
"""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from chat_core.db import Database
from presence import state
from presence.repository import PresenceRepository
from presence.state import Presence, Timeouts
from presence.store import LostWrite, PresenceStore
from tests.support.users import new_user

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TIMEOUTS = Timeouts(edge=timedelta(seconds=30), idle=timedelta(seconds=120))


def opened(presence: Presence, connection_id: str) -> Presence:
    return state.open_connection(presence, connection_id, "edge-1", T0, T0, TIMEOUTS)


async def test_a_change_is_stored_when_its_future_completes(db: Database) -> None:
    store = PresenceStore(db)
    user = new_user()
    presence = await store.get(user)

    stored = store.put(user, opened(presence, "c1"))
    await stored

    loaded = await PresenceRepository(db).load(user)
    assert set(loaded.connections) == {"c1"}
    assert loaded.rev == 1
    assert store.unwritten(user) is None


async def test_concurrent_changes_go_in_few_bulk_writes(db: Database) -> None:
    store = PresenceStore(db)
    users = [new_user() for _ in range(200)]
    held = await asyncio.gather(*(store.get(user) for user in users))
    # Loads waiting together are one fetch (or a few), not one per user.
    assert store.loads <= 3

    await asyncio.gather(*(store.put(p.user_id, opened(p, "c1")) for p in held))

    assert store.written == 200
    assert store.writes <= 3
    loaded = await PresenceRepository(db).load_many(users)
    assert all(set(p.connections) == {"c1"} for p in loaded)


async def test_a_user_changed_twice_before_the_write_is_written_once(db: Database) -> None:
    store = PresenceStore(db)
    user = new_user()
    presence = await store.get(user)
    first = store.put(user, opened(presence, "c1"))
    second = store.put(user, opened(opened(presence, "c1"), "c2"))

    await asyncio.gather(first, second)

    assert store.written == 1
    assert set((await PresenceRepository(db).load(user)).connections) == {"c1", "c2"}


async def test_a_user_another_process_wrote_is_not_overwritten(db: Database) -> None:
    build = await db.client.admin.command("buildInfo")
    ours, theirs = PresenceStore(db), PresenceStore(db)
    if any(key.startswith("ferretdb") for key in build) and not await ours._conditional():
        pytest.skip("stock FerretDB writes presence by _id alone (one owner per user)")
    user = new_user()
    await ours.put(user, opened(await ours.get(user), "c1"))

    # A new owner took over, read the stored state and moved it on.
    await theirs.put(user, opened(await theirs.get(user), "c2"))
    # The old owner, unaware, writes from the revision it knew.
    stale = ours.put(user, opened(await ours.get(user), "c3"))

    with pytest.raises(LostWrite):
        await stale
    assert ours.peek(user) is None, "dropped, so its next event is applied to the stored state"
    assert set((await ours.get(user)).connections) == {"c1", "c2"}


async def test_forgetting_reloads_what_the_database_holds(db: Database) -> None:
    store = PresenceStore(db)
    user = new_user()
    await store.put(user, opened(await store.get(user), "c1"))
    # Written by someone else while this process did not own the user.
    stored = await PresenceRepository(db).load(user)
    await PresenceRepository(db).save(stored, opened(stored, "c2"), T0)

    store.forget()

    assert set((await store.get(user)).connections) == {"c1", "c2"}


async def test_a_new_owner_adopts_the_online_users_its_predecessor_stored(db: Database) -> None:
    previous = PresenceStore(db)
    online, offline = new_user(), new_user()
    await previous.put(online, opened(await previous.get(online), "c1"))
    gone = state.close_connection(opened(await previous.get(offline), "c1"), "c1", T0, T0, TIMEOUTS)
    await previous.put(offline, state.mark_announced(gone, "offline"))

    successor = PresenceStore(db)
    adopted = await successor.adopt_watched(None, lambda user_id: user_id in {online, offline})

    assert adopted == 1
    assert successor.peek(online) is not None
    assert successor.peek(offline) is None
    assert None in successor.adopted


async def test_idle_offline_users_leave_memory_and_online_ones_stay(db: Database) -> None:
    clock = [0.0]
    store = PresenceStore(db, clock=lambda: clock[0])
    online, offline = new_user(), new_user()
    await store.put(online, opened(await store.get(online), "c1"))
    await store.get(offline)

    clock[0] = 30.0
    assert store.evict_idle(60.0) == 0
    clock[0] = 61.0
    assert store.evict_idle(60.0) == 1

    assert store.peek(online) is not None
    assert store.peek(offline) is None
