"""The messaging REST API, as an app calls it: Bearer token, JSON bodies."""

import asyncio
from typing import Any

import httpx
import orjson

_JSON = {"Content-Type": "application/json"}
# Setup is not measured: a slow creation must not end the run, and a failed one is retried
# as an app would (each retry is counted and reported).
SETUP_TIMEOUT = 120.0
SETUP_ATTEMPTS = 3
SETUP_BACKOFF_SECONDS = 0.5


# Below uvicorn's keep-alive timeout (5 s, httpx's default expiry too): with equal timers a
# request could go out on a connection the server was closing that instant, and fail with
# ReadError (seen once or twice per e2e run under load).
KEEPALIVE_EXPIRY_SECONDS = 2.0


class RestError(Exception):
    def __init__(self, what: str, status: int, body: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:300]}")
        self.status = status


def _headers(user_id: str) -> dict[str, str]:
    return {**_JSON, "Authorization": f"Bearer {user_id}"}


class RestClient:
    def __init__(self, base_url: str, *, max_connections: int = 100, timeout: float = 10.0):
        self.max_connections = max_connections
        # What went wrong in setup calls that a retry then fixed.
        self.setup_retries: list[str] = []
        self._http = httpx.AsyncClient(
            base_url=base_url,
            # Loopback only: no proxy from the environment may sit in between.
            trust_env=False,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
            ),
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def create_conversation(
        self,
        user_id: str,
        participant_ids: list[str],
        name: str | None = None,
        *,
        request_timeout: float = SETUP_TIMEOUT,
    ) -> str:
        body: dict[str, Any] = {"participantIds": participant_ids}
        if name is not None:
            body["name"] = name
        for attempt in range(1, SETUP_ATTEMPTS + 1):
            try:
                response = await self._http.post(
                    "/conversations",
                    content=orjson.dumps(body),
                    headers=_headers(user_id),
                    timeout=request_timeout,
                )
            except httpx.TransportError as error:
                if attempt == SETUP_ATTEMPTS:
                    raise
                self.setup_retries.append(f"POST /conversations: {type(error).__name__}")
            else:
                if response.status_code in (200, 201):
                    return str(orjson.loads(response.content)["id"])
                if response.status_code < 500 or attempt == SETUP_ATTEMPTS:
                    raise RestError("POST /conversations", response.status_code, response.text)
                self.setup_retries.append(f"POST /conversations: HTTP {response.status_code}")
            await asyncio.sleep(SETUP_BACKOFF_SECONDS * attempt)
        raise AssertionError("unreachable")

    async def send_message(
        self, user_id: str, conversation_id: str, content: str, client_message_id: str
    ) -> httpx.Response:
        body = {
            "content": content,
            "messageType": "text",
            "clientMessageId": client_message_id,
        }
        return await self._http.post(
            f"/conversations/{conversation_id}/messages",
            content=orjson.dumps(body),
            headers=_headers(user_id),
        )
