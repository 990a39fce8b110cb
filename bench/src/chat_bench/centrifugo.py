"""Centrifugo v6.9.1, the yardstick of `chat-bench compare`: its binary (built once by
scripts/ensure_centrifugo.sh), a generated config, the server on a free loopback port,
connection JWTs, its HTTP API `publish`, and a WebSocket client for its JSON protocol.

Each user is subscribed server-side to a personal channel on connect
(`client.subscribe_to_user_personal_channel`), named `personal:#<user id>`; a publish there
reaches every connection of that user, as a chat message reaches a user's devices.
"""

import asyncio
import contextlib
import itertools
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from chat_launcher import die_with_parent, free_port
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chat_bench.progress import Progress
from chat_bench.stack import StackError

VERSION = "v6.9.1"
PERSONAL_NAMESPACE = "personal"
# What scripts/ensure_centrifugo.sh exits with when asked for a cached build it does not have.
EXIT_NOT_CACHED = 3
ENSURE_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "ensure_centrifugo.sh"
TOKEN_TTL_SECONDS = 24 * 3600
# Ports others on this machine use on purpose (docs/infrastructure.md); never ours to take.
RESERVED_PORTS = frozenset({*range(8000, 8003), 8010, 8011, 8021, 8022, 8031, 8032, 8080})


class CentrifugoUnavailable(Exception):
    """No binary: not cached (and not to be built), or the build failed."""


def binary(*, build: bool) -> Path:
    """The Centrifugo binary; built first when missing and `build` (several minutes)."""
    if not ENSURE_SCRIPT.is_file():
        raise CentrifugoUnavailable(f"{ENSURE_SCRIPT} is missing (run from the repository)")
    command = ["bash", str(ENSURE_SCRIPT)] + ([] if build else ["--cached"])
    # Build progress goes to our stderr as it happens; only the path comes back on stdout.
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode == EXIT_NOT_CACHED:
        raise CentrifugoUnavailable(
            f"Centrifugo {VERSION} is not built yet: run `bash scripts/ensure_centrifugo.sh`"
        )
    path = Path(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    if done.returncode != 0 or path is None or not path.is_file():
        raise CentrifugoUnavailable(
            f"scripts/ensure_centrifugo.sh failed (exit {done.returncode}); see its output above"
        )
    return path


def free_unreserved_port() -> int:
    while True:
        port = free_port()
        if port not in RESERVED_PORTS:
            return port


@dataclass(frozen=True)
class CentrifugoConfig:
    """Everything the server and its clients must agree on; secrets fresh per run."""

    port: int
    token_secret: str
    api_key: str
    namespace: str = PERSONAL_NAMESPACE
    address: str = "127.0.0.1"

    @classmethod
    def generate(cls, port: int) -> "CentrifugoConfig":
        return cls(port, secrets.token_urlsafe(32), secrets.token_urlsafe(24))

    def document(self) -> dict[str, Any]:
        """The config file (v6 layout: nested sections)."""
        return {
            "http_server": {"address": self.address, "port": self.port},
            "log": {"level": "error"},
            # No traffic off this machine.
            "usage_stats": {"disabled": True},
            "health": {"enabled": True},
            "client": {
                "token": {"hmac_secret_key": self.token_secret},
                "subscribe_to_user_personal_channel": {
                    "enabled": True,
                    "personal_channel_namespace": self.namespace,
                },
            },
            # Memory only: no history, no presence, no join/leave (the namespace's defaults).
            "channel": {"namespaces": [{"name": self.namespace}]},
            "http_api": {"key": self.api_key},
        }

    def personal_channel(self, user_id: str) -> str:
        """`<namespace>:#<user>`: namespace boundary `:`, user boundary `#` (the defaults)."""
        return f"{self.namespace}:#{user_id}"

    def connection_token(self, user_id: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {"sub": user_id, "iat": issued, "exp": issued + TOKEN_TTL_SECONDS}
        return jwt.encode(claims, self.token_secret, algorithm="HS256")

    @property
    def http_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def websocket_url(self) -> str:
        return f"ws://{self.address}:{self.port}/connection/websocket"


@dataclass
class OwnedCentrifugo:
    """The server as a child process, its config and log in a temp directory removed after."""

    binary: Path
    config: CentrifugoConfig
    progress: Progress
    directory: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="chat-bench-centrifugo-"))
    )
    process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise StackError("Centrifugo is not running")
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.directory / "centrifugo.log"

    async def start(self, ready_timeout: float) -> None:
        config_path = self.directory / "config.json"
        config_path.write_bytes(orjson.dumps(self.config.document(), option=orjson.OPT_INDENT_2))
        config_path.chmod(0o600)
        with self.log_path.open("wb") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                str(self.binary),
                "--config",
                str(config_path),
                cwd=self.directory,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        deadline = time.monotonic() + ready_timeout
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
            while True:
                if self.process.returncode is not None:
                    raise StackError(
                        f"Centrifugo exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.config.http_url}/health")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise StackError(f"Centrifugo not healthy after {ready_timeout:g}s")
                await asyncio.sleep(0.1)
        self.progress.say(
            f"started Centrifugo {VERSION} (pid {self.pid}) on {self.config.http_url}"
        )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def stop(self, grace: float = 10.0) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


class CentrifugoError(Exception):
    """An error reply to a command, or an API error."""


class PublishApi:
    """The server HTTP API, as an application backend calls it."""

    def __init__(self, config: CentrifugoConfig, *, max_connections: int = 64) -> None:
        self.max_connections = max_connections
        self._http = httpx.AsyncClient(
            base_url=config.http_url,
            trust_env=False,
            timeout=10.0,
            headers={"X-API-Key": config.api_key, "Content-Type": "application/json"},
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def publish(self, channel: str, data: dict[str, Any]) -> None:
        response = await self._http.post(
            "/api/publish", content=orjson.dumps({"channel": channel, "data": data})
        )
        response.raise_for_status()
        body = orjson.loads(response.content)
        if "error" in body:
            raise CentrifugoError(f"publish to {channel}: {body['error']}")

    async def close(self) -> None:
        await self._http.aclose()


Push = dict[str, Any]
PushHandler = Callable[["CentrifugoSocket", Push, float], None]


def split_messages(raw: str | bytes) -> list[dict[str, Any]]:
    """One WebSocket frame of the JSON protocol: messages separated by newlines."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    return [orjson.loads(line) for line in text.split("\n") if line.strip()]


def ignore_pushes(_socket: "CentrifugoSocket", _push: Push, _at: float) -> None:
    pass


class CentrifugoSocket:
    """One device connected to Centrifugo: answers the server's pings (an empty message
    answered by an empty one) and hands each push to `on_push` with its arrival time."""

    def __init__(
        self, config: CentrifugoConfig, user_id: str, on_push: PushHandler = ignore_pushes
    ) -> None:
        self.user_id = user_id
        self._config = config
        self._on_push = on_push
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.close_code: int | None = None

    async def open(self, open_timeout: float) -> dict[str, Any]:
        """WebSocket upgrade, then the connect command with a fresh JWT and its reply (the
        connect result: client id, server-side subscriptions, ping interval)."""
        self._socket = await connect(
            self._config.websocket_url,
            compression=None,
            proxy=None,
            open_timeout=open_timeout,
            ping_interval=None,
            close_timeout=5,
            user_agent_header="chat-bench",
        )
        self._reader = asyncio.create_task(self._read(self._socket))
        token = self._config.connection_token(self.user_id)
        reply = await asyncio.wait_for(
            self.command("connect", {"token": token, "name": "chat-bench"}), open_timeout
        )
        result: dict[str, Any] = reply.get("connect", {})
        return result

    async def command(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if self._socket is None:
            raise CentrifugoError(f"{self.user_id}: not open")
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[command_id] = future
        await self._socket.send(orjson.dumps({"id": command_id, method: params}).decode())
        reply = await future
        if "error" in reply:
            raise CentrifugoError(f"{self.user_id}: {method}: {reply['error']}")
        return reply

    async def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._socket.close()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=10)

    async def _read(self, socket: ClientConnection) -> None:
        try:
            async for raw in socket:
                at = time.monotonic()
                for message in split_messages(raw):
                    if not message:
                        await socket.send("{}")
                    elif "id" in message:
                        future = self._replies.pop(int(message["id"]), None)
                        if future is not None and not future.done():
                            future.set_result(message)
                    elif "push" in message:
                        self._on_push(self, message["push"], at)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = socket.close_code if socket.close_code is not None else 1006
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(CentrifugoError(f"{self.user_id}: {self.close_code}"))
            self._replies.clear()
