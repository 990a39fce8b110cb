"""REST steps the e2e tests share: create a conversation, send a message, as an app does."""

from typing import Any

import httpx

Json = dict[str, Any]


async def create(client: httpx.AsyncClient, *others: str, name: str | None = None) -> Json:
    body: Json = {"participantIds": list(others)}
    if name is not None:
        body["name"] = name
    response = await client.post("/conversations", json=body)
    assert response.status_code in (200, 201), response.text
    created: Json = response.json()
    return created


async def send(
    client: httpx.AsyncClient,
    conversation_id: str,
    content: str = "hello",
    message_type: str = "text",
    **extra: str,
) -> Json:
    response = await client.post(
        f"/conversations/{conversation_id}/messages",
        json={"content": content, "messageType": message_type, **extra},
    )
    assert response.status_code == 201, response.text
    sent: Json = response.json()
    return sent
