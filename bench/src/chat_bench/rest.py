"""The load client's HTTP side: one pooled aiohttp session per service, as an app calls the
API (Bearer token, JSON bodies).

aiohttp because of what it costs this process per request (about 0.6 ms of CPU per REST send
here, where httpx spent 13-15 ms): the generator shares the machine with the stack it measures.
"""

import asyncio
from typing import Any, Self

import aiohttp
import orjson

JSON = "application/json"
# Below uvicorn's keep-alive timeout (5 s): a request must never go out on a connection the
# server is closing that instant (a ReadError a retry would hide).
KEEPALIVE_SECONDS = 2.0
# Setup calls (creating conversations) are not measured: slow is fine, a failure is retried.
SETUP_TIMEOUT = 120.0
SETUP_ATTEMPTS = 3


class RestError(Exception):
    def __init__(self, what: str, status: int, body: bytes) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:300].decode(errors='replace')}")
        self.status = status


class Http:
    """One service's HTTP API, as an app calls it: Bearer token, JSON bodies."""

    def __init__(self, base_url: str, *, connections: int = 64, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.connections = connections
        self.setup_retries: list[str] = []
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created inside the running loop (aiohttp binds a session to it).
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.connections, keepalive_timeout=KEEPALIVE_SECONDS
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def call(
        self,
        method: str,
        path: str,
        user_id: str | None = None,
        body: bytes | None = None,
        *,
        seconds: float | None = None,
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": JSON} if body is not None else {}
        if user_id is not None:
            headers["Authorization"] = f"Bearer {user_id}"
        async with self._open().request(
            method,
            self.base_url + path,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=seconds) if seconds else None,
        ) as response:
            return response.status, await response.read()

    async def get_json(self, path: str, user_id: str | None = None) -> Any:
        status, body = await self.call("GET", path, user_id)
        if status != 200:
            raise RestError(f"GET {path}", status, body)
        return orjson.loads(body)

    async def setup(self, method: str, path: str, user_id: str, payload: Any) -> Any:
        """A setup call: retried on 5xx and transport errors (each retry is recorded)."""
        body = orjson.dumps(payload)
        for attempt in range(1, SETUP_ATTEMPTS + 1):
            try:
                status, answer = await self.call(method, path, user_id, body, seconds=SETUP_TIMEOUT)
            except (aiohttp.ClientError, TimeoutError) as error:
                if attempt == SETUP_ATTEMPTS:
                    raise
                self.setup_retries.append(f"{method} {path}: {type(error).__name__}")
            else:
                if status in (200, 201):
                    return orjson.loads(answer)
                if status < 500 or attempt == SETUP_ATTEMPTS:
                    raise RestError(f"{method} {path}", status, answer)
                self.setup_retries.append(f"{method} {path}: HTTP {status}")
            await asyncio.sleep(0.5 * attempt)
        raise AssertionError("unreachable")

    async def create_conversation(
        self, user_id: str, others: list[str], name: str | None = None
    ) -> str:
        payload: dict[str, Any] = {"participantIds": others}
        if name is not None:
            payload["name"] = name
        return str((await self.setup("POST", "/conversations", user_id, payload))["id"])

    async def send_message(
        self, user_id: str, conversation_id: str, content: str, client_message_id: str
    ) -> tuple[int, bytes]:
        body = orjson.dumps(
            {"content": content, "messageType": "text", "clientMessageId": client_message_id}
        )
        return await self.call("POST", f"/conversations/{conversation_id}/messages", user_id, body)
