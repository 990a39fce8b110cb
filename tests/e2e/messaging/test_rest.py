"""The messaging REST API over real HTTP against the running service: routes and error codes."""

import asyncio
from datetime import datetime

import httpx
import pytest

from chat_core.ids import new_id
from tests.support.clients import WsClient, rest_client
from tests.support.rest import Json, create, send
from tests.support.stack import ServiceProcess, Stack
from tests.support.users import new_user

pytestmark = pytest.mark.e2e


def conversation_routes(
    conversation_id: str, message_id: str
) -> list[tuple[str, str, Json | None]]:
    return [
        ("GET", f"/conversations/{conversation_id}/messages", None),
        (
            "POST",
            f"/conversations/{conversation_id}/messages",
            {"content": "hi", "messageType": "text"},
        ),
        ("GET", f"/conversations/{conversation_id}/messages/{message_id}", None),
    ]


async def test_health_and_readiness(messaging: ServiceProcess) -> None:
    async with rest_client(messaging.http_url, None) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"broker": True, "database": True, "outbox_relay": True}


async def test_a_group_includes_the_creator_once_and_drops_duplicates(
    messaging: ServiceProcess,
) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    async with rest_client(messaging.http_url, alice) as client:
        response = await client.post(
            "/conversations", json={"participantIds": [bob, carol, bob, alice], "name": " Team "}
        )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "participantIds", "name", "createdAt"}
    assert body["participantIds"] == [alice, bob, carol]
    assert body["name"] == "Team"
    assert len(body["id"]) == 24
    assert datetime.fromisoformat(body["createdAt"]).utcoffset() is not None


async def test_the_one_to_one_of_a_pair_is_returned_again_with_200(
    messaging: ServiceProcess,
) -> None:
    alice, bob = new_user(), new_user()
    async with (
        rest_client(messaging.http_url, alice) as a,
        rest_client(messaging.http_url, bob) as b,
    ):
        first = await a.post("/conversations", json={"participantIds": [bob]})
        again = await b.post("/conversations", json={"participantIds": [alice]})
        named = await a.post("/conversations", json={"participantIds": [bob], "name": "plans"})
        listed = (await a.get("/conversations")).json()["items"]
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert named.status_code == 201
    assert named.json()["id"] != first.json()["id"]
    assert sorted(item["id"] for item in listed) == sorted([first.json()["id"], named.json()["id"]])


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"participantIds": ["not-a-phone"]}, ["body", "participantIds", 0]),
        ({"participantIds": ["+84987654321", "+1 555 0100"]}, ["body", "participantIds", 1]),
        ({"participantIds": []}, ["body", "participantIds"]),
        ({}, ["body", "participantIds"]),
        ({"participantIds": "+84987654321"}, ["body", "participantIds"]),
        ({"participantIds": ["+84987654321"], "name": "x" * 201}, ["body", "name"]),
        ({"participantIds": ["+84987654321"], "name": "   "}, ["body", "name"]),
        ({"participantIds": ["+84987654321"], "members": []}, ["body", "members"]),
    ],
)
async def test_a_malformed_conversation_is_422_with_a_reason(
    messaging: ServiceProcess, body: Json, where: list[str | int]
) -> None:
    async with rest_client(messaging.http_url, new_user()) as client:
        response = await client.post("/conversations", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["loc"] == where
    assert all(error["msg"] for error in detail)


async def test_a_conversation_with_only_yourself_is_422(messaging: ServiceProcess) -> None:
    alice = new_user()
    async with rest_client(messaging.http_url, alice) as client:
        response = await client.post("/conversations", json={"participantIds": [alice]})
    assert response.status_code == 422
    assert "besides you" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-phone", "Bearer +1555", "Basic +84912345678"],
)
async def test_every_route_wants_a_valid_token(
    messaging: ServiceProcess, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    cid, mid = new_id(), new_id()
    routes = [
        ("POST", "/conversations", {"participantIds": [new_user()]}),
        ("GET", "/conversations", None),
        *conversation_routes(cid, mid),
    ]
    async with httpx.AsyncClient(base_url=messaging.http_url, headers=headers) as client:
        for method, path, body in routes:
            response = await client.request(method, path, json=body)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["detail"]


async def test_a_disabled_account_gets_403_everywhere(
    messaging: ServiceProcess, stack: Stack
) -> None:
    alice, bob = new_user(), new_user()
    async with rest_client(messaging.http_url, alice) as client:
        conversation = await create(client, bob)
        sent = await send(client, conversation["id"])
        disabled = stack.run_admin("users", "disable", alice)
        assert disabled.returncode == 0, disabled.stderr
        routes = [
            ("POST", "/conversations", {"participantIds": [bob]}),
            ("GET", "/conversations", None),
            *conversation_routes(conversation["id"], sent["messageId"]),
        ]
        for method, path, body in routes:
            response = await client.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert "disabled" in response.json()["detail"]


async def test_outsiders_get_the_same_404_as_for_a_conversation_that_does_not_exist(
    messaging: ServiceProcess,
) -> None:
    alice, bob, mallory = new_user(), new_user(), new_user()
    async with (
        rest_client(messaging.http_url, alice) as a,
        rest_client(messaging.http_url, mallory) as m,
    ):
        conversation = await create(a, bob, name="private")
        sent = await send(a, conversation["id"], "secret")
        for method, path, body in conversation_routes(conversation["id"], sent["messageId"]):
            theirs = await m.request(method, path, json=body)
            unknown_path = path.replace(conversation["id"], new_id())
            unknown = await m.request(method, unknown_path, json=body)
            assert theirs.status_code == 404, (method, path)
            assert theirs.json() == unknown.json() == {"detail": "conversation not found"}
            assert "secret" not in theirs.text
        assert (await m.get("/conversations")).json() == {"items": [], "nextCursor": None}
        history = (await a.get(f"/conversations/{conversation['id']}/messages")).json()
    # The outsider's attempted send stored nothing.
    assert [item["content"] for item in history["items"]] == ["secret"]


async def test_unknown_messages_are_404(messaging: ServiceProcess) -> None:
    alice, bob = new_user(), new_user()
    async with rest_client(messaging.http_url, alice) as client:
        here = await create(client, bob, name="here")
        there = await create(client, bob, name="there")
        elsewhere = await send(client, there["id"])
        for message_id in (new_id(), elsewhere["messageId"]):
            response = await client.get(f"/conversations/{here['id']}/messages/{message_id}")
            assert response.status_code == 404
            assert response.json() == {"detail": "message not found"}


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/conversations/abc/messages", ["path", "conversation_id"]),
        ("/conversations/ABCDEFABCDEFABCDEFABCDEF/messages", ["path", "conversation_id"]),
        ("/conversations/{cid}/messages/xyz", ["path", "message_id"]),
        ("/conversations/{cid}/messages?limit=0", ["query", "limit"]),
        ("/conversations/{cid}/messages?limit=201", ["query", "limit"]),
        ("/conversations/{cid}/messages?limit=ten", ["query", "limit"]),
        ("/conversations/{cid}/messages?before=yesterday", ["query", "before"]),
    ],
)
async def test_malformed_ids_and_queries_are_422(
    messaging: ServiceProcess, path: str, where: list[str]
) -> None:
    alice = new_user()
    async with rest_client(messaging.http_url, alice) as client:
        conversation = await create(client, new_user())
        response = await client.get(path.format(cid=conversation["id"]))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == where


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"content": "hi", "messageType": "gif"}, ["body", "messageType"]),
        ({"content": "hi"}, ["body", "messageType"]),
        ({"messageType": "text"}, ["body", "content"]),
        ({"content": "", "messageType": "text"}, ["body", "content"]),
        ({"content": " \n ", "messageType": "text"}, ["body", "content"]),
        ({"content": "x" * 4001, "messageType": "text"}, ["body", "content"]),
        ({"content": 42, "messageType": "text"}, ["body", "content"]),
        (
            {"content": "hi", "messageType": "text", "clientMessageId": ""},
            ["body", "clientMessageId"],
        ),
        (
            {"content": "hi", "messageType": "text", "clientMessageId": "k" * 129},
            ["body", "clientMessageId"],
        ),
        ({"content": "hi", "messageType": "text", "sender": "x"}, ["body", "sender"]),
    ],
)
async def test_a_malformed_message_is_422_and_nothing_is_stored(
    messaging: ServiceProcess, body: Json, where: list[str]
) -> None:
    alice = new_user()
    async with rest_client(messaging.http_url, alice) as client:
        conversation = await create(client, new_user())
        response = await client.post(f"/conversations/{conversation['id']}/messages", json=body)
        history = await client.get(f"/conversations/{conversation['id']}/messages")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == where
    assert response.json()["detail"][0]["msg"]
    assert history.json()["items"] == []


async def test_content_up_to_the_limit_is_accepted(messaging: ServiceProcess) -> None:
    alice = new_user()
    async with rest_client(messaging.http_url, alice) as client:
        conversation = await create(client, new_user())
        sent = await send(client, conversation["id"], "ư" * 4000)
    assert len(sent["content"]) == 4000


async def test_a_sent_message_has_the_one_message_shape(messaging: ServiceProcess) -> None:
    alice = new_user()
    async with rest_client(messaging.http_url, alice) as client:
        conversation = await create(client, new_user())
        sent = await send(client, conversation["id"], "xin chào", "image", clientMessageId="c-1")
        fetched = await client.get(
            f"/conversations/{conversation['id']}/messages/{sent['messageId']}"
        )
    assert set(sent) == {
        "messageId",
        "conversationId",
        "senderId",
        "content",
        "messageType",
        "timestamp",
        "seq",
        "clientMessageId",
    }
    assert sent["seq"] == 1
    assert sent["conversationId"] == conversation["id"]
    assert sent["senderId"] == alice
    assert (sent["content"], sent["messageType"], sent["clientMessageId"]) == (
        "xin chào",
        "image",
        "c-1",
    )
    assert datetime.fromisoformat(sent["timestamp"]).utcoffset() is not None
    assert fetched.status_code == 200
    assert fetched.json() == {**sent, "readBy": []}


async def test_history_pages_newest_first_by_message_id_cursor(messaging: ServiceProcess) -> None:
    alice = new_user()
    async with rest_client(messaging.http_url, alice) as client:
        conversation = await create(client, new_user())
        path = f"/conversations/{conversation['id']}/messages"
        sent = [await send(client, conversation["id"], f"m{n}") for n in range(7)]
        everything = (await client.get(path)).json()
        pages: list[Json] = []
        before: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 3}
            if before:
                params["before"] = before
            page = (await client.get(path, params=params)).json()
            pages.append(page)
            if not page["hasMore"]:
                break
            before = page["items"][-1]["messageId"]
    newest_first = [m["messageId"] for m in reversed(sent)]
    assert [m["messageId"] for m in everything["items"]] == newest_first
    assert everything["hasMore"] is False
    assert [[m["messageId"] for m in p["items"]] for p in pages] == [
        newest_first[0:3],
        newest_first[3:6],
        newest_first[6:7],
    ]
    assert [p["hasMore"] for p in pages] == [True, True, False]
    assert pages[0]["items"][0] == sent[-1]


async def test_history_limit_defaults_to_50(messaging: ServiceProcess) -> None:
    alice = new_user()
    async with rest_client(messaging.http_url, alice) as client:
        conversation = await create(client, new_user())
        await asyncio.gather(*(send(client, conversation["id"], f"m{n}") for n in range(52)))
        path = f"/conversations/{conversation['id']}/messages"
        default = (await client.get(path)).json()
        most = (await client.get(path, params={"limit": 200})).json()
    assert len(default["items"]) == 50
    assert default["hasMore"] is True
    assert len(most["items"]) == 52
    assert most["hasMore"] is False


async def test_the_list_is_most_recent_activity_first_with_last_message_and_unread(
    messaging: ServiceProcess,
) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    async with (
        rest_client(messaging.http_url, alice) as a,
        rest_client(messaging.http_url, bob) as b,
    ):
        with_bob = await create(a, bob)
        group = await create(a, bob, carol, name="trio")
        quiet = await create(b, carol, alice, name="quiet")
        await send(a, with_bob["id"], "one")
        await send(a, group["id"], "two")
        last = await send(a, with_bob["id"], "three")
        await send(b, with_bob["id"], "bob's own")
        listed = (await b.get("/conversations")).json()["items"]
        alices = {item["id"]: item for item in (await a.get("/conversations")).json()["items"]}
    assert [item["id"] for item in listed] == [with_bob["id"], group["id"], quiet["id"]]
    first = listed[0]
    assert first["lastMessage"]["content"] == "bob's own"
    assert first["lastActivityAt"] == first["lastMessage"]["timestamp"]
    # Sending moves the sender's own read position to the message: nothing before it is
    # unread for bob any more, and alice has one unread (bob's) after her own "three".
    assert (first["lastSeq"], first["readSeq"], first["unreadCount"]) == (3, 3, 0)
    assert (alices[with_bob["id"]]["readSeq"], alices[with_bob["id"]]["unreadCount"]) == (2, 1)
    assert first["participantIds"] == [alice, bob]
    assert (listed[1]["lastSeq"], listed[1]["readSeq"], listed[1]["unreadCount"]) == (1, 0, 1)
    assert listed[2]["lastMessage"] is None
    assert listed[2]["unreadCount"] == 0
    assert listed[2]["lastActivityAt"] == listed[2]["createdAt"]
    assert last["content"] == "three"


async def test_the_openapi_document_describes_the_api(messaging: ServiceProcess) -> None:
    async with rest_client(messaging.http_url, None) as client:
        document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/conversations"]) == {"get", "post"}
    assert set(paths["/conversations/{conversation_id}/messages"]) == {"get", "post"}
    assert set(paths["/conversations/{conversation_id}/messages/{message_id}"]) == {"get"}
    create_responses = paths["/conversations"]["post"]["responses"]
    assert {"200", "201", "401", "403", "422"} <= set(create_responses)
    for path in (
        "/conversations/{conversation_id}/messages",
        "/conversations/{conversation_id}/messages/{message_id}",
    ):
        for operation in paths[path].values():
            assert {"401", "403", "404", "422"} <= set(operation["responses"])
            assert operation["security"] == [{"HTTPBearer": []}]
    schemas = document["components"]["schemas"]
    assert schemas["SendMessage"]["properties"]["messageType"]["enum"] == [
        "text",
        "image",
        "video",
        "audio",
    ]
    assert schemas["SendMessage"]["properties"]["content"]["maxLength"] == 4000
    assert set(schemas["MessageDetail"]["required"]) >= {"messageId", "timestamp", "readBy"}
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_read_state_shows_in_read_by_and_unread_counts(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    async with (
        rest_client(messaging.http_url, alice) as a,
        rest_client(messaging.http_url, bob) as b,
        WsClient.for_user(edge.ws_url, alice) as alice_ws,
        WsClient.for_user(edge.ws_url, bob) as bob_ws,
    ):
        await alice_ws.heartbeat()
        await bob_ws.heartbeat()
        conversation = await create(a, bob, carol, name="readers")
        cid = conversation["id"]
        first, second, third = [await send(a, cid, f"m{n}") for n in range(3)]

        async def unread() -> int:
            items = (await b.get("/conversations")).json()["items"]
            (mine,) = [item for item in items if item["id"] == cid]
            count: int = mine["unreadCount"]
            return count

        async def read(message: Json) -> None:
            await bob_ws.send(
                {"event": "message_read", "conversationId": cid, "messageId": message["messageId"]}
            )
            # The receipt is published after the read state is written.
            await alice_ws.wait_event("message_read", messageId=message["messageId"], userId=bob)

        assert await unread() == 3
        await read(second)
        assert await unread() == 1
        await read(first)
        assert await unread() == 1
        details = [
            (await a.get(f"/conversations/{cid}/messages/{m['messageId']}")).json()
            for m in (first, second, third)
        ]
        await read(third)
        assert await unread() == 0
    assert [[r["userId"] for r in d["readBy"]] for d in details] == [[bob], [bob], []]
    assert datetime.fromisoformat(details[0]["readBy"][0]["readAt"]).utcoffset() is not None
