"""Running a service's ASGI app (and its internal listener), and the /healthz and /readyz
routes they all serve."""

import argparse
import asyncio
import ipaddress
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from pydantic_settings import BaseSettings
from starlette.types import ASGIApp

from chat_core import cli
from chat_core.settings import AuthMode, ServiceSettings

log = structlog.get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
BeforeExit = Callable[[], Awaitable[None]]


def health_router(readiness: ReadinessCheck) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        responses={
            200: {"description": "Broker and database reachable."},
            503: {"description": "Not ready: `checks` says which dependency failed."},
        },
    )
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    return router


def parse_address(
    description: str,
    default_port: int,
    settings: type[BaseSettings] = ServiceSettings,
    prog: str | None = None,
) -> argparse.Namespace:
    """--host/--port for a service, plus --version and the environment settings in --help."""
    name = prog or Path(sys.argv[0]).name
    parser = cli.parser(name, description, settings)
    parser.add_argument("--host", default=None, help="interface to bind (default: settings HOST)")
    parser.add_argument("--port", type=int, default=default_port)
    return parser.parse_args()


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback one. A name that does not resolve,
    or "" / 0.0.0.0 / :: (every interface), is not: the check fails closed."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def listen_host(prog: str, requested: str | None, settings: ServiceSettings) -> str:
    """The interface to bind (--host, else HOST); exits with a message instead when dev auth,
    where the phone number is the whole credential, would face a network."""
    host = requested or settings.host
    if settings.auth_mode is not AuthMode.DEV or is_loopback(host):
        return host
    if not settings.allow_dev_auth_on_network:
        sys.exit(
            f"{prog}: refusing to listen on {host!r} with AUTH_MODE=dev: dev auth lets anyone "
            "sign in as any phone number, so it serves loopback only. Use AUTH_MODE=firebase "
            "(docs/deployment.md), listen on 127.0.0.1, or, on a closed network only, set "
            "ALLOW_DEV_AUTH_ON_NETWORK=true."
        )
    log.warning(
        "AUTH_MODE=dev on a network interface (ALLOW_DEV_AUTH_ON_NETWORK=true): anyone who "
        "can reach it can sign in as any phone number",
        host=host,
    )
    return host


@dataclass(frozen=True)
class InternalListener:
    """Where the internal endpoints are served when ADMIN_PORT is set (chat_core.internal)."""

    app: ASGIApp
    host: str
    port: int


def internal_listener(
    app: FastAPI, settings: ServiceSettings, service_host: str
) -> InternalListener | None:
    internal: ASGIApp | None = getattr(app.state, "internal_app", None)
    if internal is None or settings.admin_port is None:
        return None
    return InternalListener(internal, settings.admin_host or service_host, settings.admin_port)


class _Server(uvicorn.Server):
    """uvicorn, except that the first SIGTERM or SIGINT runs `before_exit` (an edge's drain)
    while still listening, and only then starts uvicorn's shutdown (listener closed, in-flight
    requests finished, lifespan shutdown). A second signal stops at once.

    With an internal listener, that second uvicorn server shares this one's loop and signal
    handling: bound before the lifespan starts (a taken port fails fast), closed last (so
    /metrics is scraped through the drain)."""

    def __init__(
        self,
        config: uvicorn.Config,
        before_exit: BeforeExit | None,
        internal: uvicorn.Server | None = None,
    ) -> None:
        super().__init__(config)
        self._before_exit = before_exit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exiting: asyncio.Task[None] | None = None
        self._internal = internal
        self._internal_ticks: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        if self._internal is not None:
            internal = self._internal
            internal.config.load()
            # What uvicorn.Server.serve does before startup; serve itself would take over
            # the signal handlers.
            internal.lifespan = internal.config.lifespan_class(internal.config)
            await internal.startup()
            self._internal_ticks = asyncio.create_task(internal.main_loop())
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self._internal is not None and self._internal_ticks is not None:
            self._internal.should_exit = True
            await self._internal_ticks
            await self._internal.shutdown()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._before_exit is None or self._loop is None or self._exiting is not None:
            super().handle_exit(sig, frame)
            return
        # A signal handler runs between two bytecodes of the loop's thread: hand over to it.
        self._loop.call_soon_threadsafe(self._start_exit)

    def _start_exit(self) -> None:
        if self._exiting is None and self._before_exit is not None:
            self._exiting = asyncio.create_task(self._exit_after(self._before_exit))

    async def _exit_after(self, before_exit: BeforeExit) -> None:
        try:
            await before_exit()
        except Exception:
            log.exception("shutdown step failed; shutting down anyway")
        finally:
            self.should_exit = True


def serve(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    before_exit: BeforeExit | None = None,
    internal: InternalListener | None = None,
    **options: object,
) -> None:
    """Serve until SIGTERM/SIGINT. uvicorn then stops listening, gives in-flight requests
    `timeout_graceful_shutdown` seconds and runs the lifespan shutdown; `before_exit` runs
    first, while the listener is still open (so /readyz can answer 503 to the balancer).
    `internal`: the ADMIN_PORT listener, served alongside in the same event loop."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=3,
        # uvicorn would believe X-Forwarded-For from loopback; chat_core.client_address
        # decides instead, from TRUSTED_PROXIES only.
        proxy_headers=False,
        **options,  # type: ignore[arg-type]
    )
    internal_server = None
    if internal is not None:
        internal_server = uvicorn.Server(
            uvicorn.Config(
                internal.app,
                host=internal.host,
                port=internal.port,
                log_config=None,
                access_log=False,
                server_header=False,
                http="httptools",
                lifespan="off",
                timeout_graceful_shutdown=1,
            )
        )
    server = _Server(config, before_exit, internal_server)
    server.run()
    if not server.started:
        # As uvicorn.run does: a failed startup (lifespan error, port taken) is an error exit.
        sys.exit(3)
