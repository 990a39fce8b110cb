"""The REST calls (messaging and presence), Bearer-authenticated like the socket.

Responses are returned as the JSON the server sent (camelCase dicts): the client ignores what it
does not know, so server additions never break it. Errors raise `ApiError`.
"""

from types import TracebackType
from typing import Any, Self

import httpx

from chat_core.events import MessageType

Json = dict[str, Any]


class ApiError(Exception):
    def __init__(self, status: int, detail: object, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class RestClient:
    """One user's REST session against messaging (`api_url`) and, optionally, presence."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        presence_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self._api = httpx.AsyncClient(base_url=api_url, headers=headers, timeout=timeout)
        self._presence = (
            httpx.AsyncClient(base_url=presence_url, headers=headers, timeout=timeout)
            if presence_url
            else None
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._api.aclose()
        if self._presence is not None:
            await self._presence.aclose()

    async def _call(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Json:
        response = await client.request(method, path, **kwargs)
        if response.is_error:
            try:
                detail: object = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail, _retry_after(response))
        body: Json = response.json()
        return body

    async def create_conversation(
        self, participant_ids: list[str], name: str | None = None
    ) -> Json:
        body: Json = {"participantIds": participant_ids}
        if name is not None:
            body["name"] = name
        return await self._call(self._api, "POST", "/conversations", json=body)

    async def conversations(self, limit: int | None = None, cursor: str | None = None) -> Json:
        """`{items, nextCursor}`: the chat list, newest activity first."""
        params = {k: v for k, v in {"limit": limit, "cursor": cursor}.items() if v is not None}
        return await self._call(self._api, "GET", "/conversations", params=params)

    async def send_message(
        self,
        conversation_id: str,
        content: str,
        message_type: MessageType = "text",
        client_message_id: str | None = None,
    ) -> Json:
        body: Json = {"content": content, "messageType": message_type}
        if client_message_id is not None:
            body["clientMessageId"] = client_message_id
        return await self._call(
            self._api, "POST", f"/conversations/{conversation_id}/messages", json=body
        )

    async def history(
        self,
        conversation_id: str,
        *,
        limit: int | None = None,
        before: str | None = None,
        after_seq: int | None = None,
    ) -> Json:
        """`{items, hasMore}`: newest first with `before`, oldest first with `after_seq`."""
        params = {
            k: v
            for k, v in {"limit": limit, "before": before, "afterSeq": after_seq}.items()
            if v is not None
        }
        return await self._call(
            self._api, "GET", f"/conversations/{conversation_id}/messages", params=params
        )

    async def message(self, conversation_id: str, message_id: str) -> Json:
        return await self._call(
            self._api, "GET", f"/conversations/{conversation_id}/messages/{message_id}"
        )

    async def sync(self, since: str, limit: int | None = None) -> Json:
        """`{items, nextSince, hasMore}`: every message after `since`, across conversations."""
        params: dict[str, str | int] = {"since": since}
        if limit is not None:
            params["limit"] = limit
        return await self._call(self._api, "GET", "/sync", params=params)

    async def presence(self, user_ids: list[str]) -> Json:
        if self._presence is None:
            raise RuntimeError("RestClient was created without presence_url")
        return await self._call(
            self._presence, "GET", "/presence", params={"userIds": ",".join(user_ids)}
        )
