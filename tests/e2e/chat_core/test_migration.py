"""A database written by the previous release (store version 1) is migrated by `chat-admin
migrate`; until then the services refuse to start on it."""

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from chat_core.clock import utcnow
from chat_core.db import Database, connect
from chat_core.ids import new_id
from tests.support.clients import rest_client
from tests.support.stack import Stack
from tests.support.users import new_user

pytestmark = pytest.mark.e2e


@pytest.fixture
async def old_stack(
    amqp_url: str, mongo_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Stack, Database]]:
    stack = Stack(amqp_url, mongo_url, tmp_path)
    client = connect(mongo_url)
    yield stack, client[stack.db_name]
    await client.close()
    stack.close()


async def write_version_1(db: Database, alice: str, bob: str) -> tuple[str, list[str]]:
    """What the previous release wrote for one conversation of three messages, bob having
    read the second."""
    start = (utcnow() - timedelta(hours=1)).replace(microsecond=0)
    cid = new_id()
    await db.conversations.insert_one(
        {"_id": cid, "participantIds": [alice, bob], "name": "old", "createdAt": start}
    )
    await db.memberships.insert_many(
        [
            {
                "_id": f"{user}|{cid}",
                "userId": user,
                "conversationId": cid,
                "participantIds": [alice, bob],
                "createdAt": start,
            }
            for user in (alice, bob)
        ]
    )
    await db.user_conversations.insert_many(
        [{"_id": user, "conversations": {cid: [alice, bob]}} for user in (alice, bob)]
    )
    ids = sorted(new_id() for _ in range(3))
    for n, message_id in enumerate(ids):
        await db.messages.insert_one(
            {
                "_id": message_id,
                "conversationId": cid,
                "senderId": alice,
                "content": f"old {n}",
                "messageType": "text",
                "createdAt": start + timedelta(minutes=n),
                # The old release generated one when the client sent none.
                "clientMessageId": "tap-1" if n == 0 else message_id,
            }
        )
    await db.read_state.insert_one(
        {
            "_id": f"{cid}|{bob}",
            "conversationId": cid,
            "userId": bob,
            "lastReadMessageId": ids[1],
            "readAt": start,
        }
    )
    return cid, ids


@pytest.mark.timeout(180)
async def test_the_old_store_is_migrated_once_and_then_served(
    old_stack: tuple[Stack, Database],
) -> None:
    stack, db = old_stack
    alice, bob = new_user(), new_user()
    cid, ids = await write_version_1(db, alice, bob)

    with pytest.raises(RuntimeError, match="chat-admin migrate"):
        stack.start("messaging")

    first = stack.run_admin("migrate")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {
        "conversations": 1,
        "messages": 3,
        "readPositions": 1,
        "aliases": 1,
    }
    again = stack.run_admin("migrate")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr
    assert "memberships" not in await db.list_collection_names()

    messaging = stack.start("messaging")
    async with (
        rest_client(messaging.http_url, bob) as b,
        rest_client(messaging.http_url, alice) as a,
    ):
        page = (await b.get(f"/conversations/{cid}/messages", params={"afterSeq": 0})).json()
        listed = (await b.get("/conversations")).json()["items"]
        repeat = await a.post(
            f"/conversations/{cid}/messages",
            json={"content": "again", "messageType": "text", "clientMessageId": "tap-1"},
        )
        new = await a.post(
            f"/conversations/{cid}/messages", json={"content": "new", "messageType": "text"}
        )
        read_by = (await a.get(f"/conversations/{cid}/messages/{ids[1]}")).json()["readBy"]
    assert [(m["seq"], m["messageId"]) for m in page["items"]] == list(enumerate(ids, 1))
    (summary,) = listed
    assert (summary["lastSeq"], summary["readSeq"], summary["unreadCount"]) == (3, 2, 1)
    assert summary["lastMessage"]["messageId"] == ids[2]
    assert repeat.status_code == 201
    assert repeat.json()["messageId"] == ids[0]
    assert new.json()["seq"] == 4
    assert [r["userId"] for r in read_by] == [bob]
