"""ws-edge: authenticates WebSocket clients, forwards their events, delivers outbound events."""

import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from chat_core import VERSION, asyncapi, metrics
from chat_core.auth import build_authenticator
from chat_core.background import BackgroundJobs
from chat_core.close_codes import CloseCode
from chat_core.internal import api_docs_urls, internal_router, place_internal
from chat_core.logs import configure_logging
from chat_core.request_context import RequestContextMiddleware
from chat_core.runtime import Runtime
from chat_core.server import (
    health_router,
    internal_listener,
    listen_host,
    parse_address,
    serve,
)
from ws_edge.config import EdgeSettings
from ws_edge.delivery import EdgeDelivery
from ws_edge.deps import EdgeDep
from ws_edge.edge import Edge
from ws_edge.process import resident_set_bytes
from ws_edge.protocol import LeanWebSocketProtocol
from ws_edge.session import run_session

log = structlog.get_logger(__name__)

WS_PREFIX = "/ws/"


def create_app(settings: EdgeSettings) -> "EdgeApp":
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        authenticator = build_authenticator(settings)
        runtime = await Runtime.start(settings, f"ws-edge {settings.edge_id}")
        delivery = EdgeDelivery(
            runtime.broker,
            settings.edge_id,
            shard_linger_seconds=settings.delivery_shard_linger_seconds,
        )
        await delivery.start()
        edge = Edge(settings, runtime, authenticator, delivery)
        app.state.edge = edge
        metrics.OPEN_SOCKETS.set_function(lambda: len(edge.registry))
        jobs = BackgroundJobs()
        jobs.every(
            settings.announce_interval_seconds,
            edge.announce,
            on_failure="edge announcement failed",
        )
        log.info("edge started", edge_id=settings.edge_id)
        try:
            yield
        finally:
            await jobs.stop()
            # After a drain nobody is left; without one (a second signal), still ask to reconnect.
            await edge.close_all(CloseCode.SERVICE_RESTART, "edge restarting; reconnect")
            await delivery.close()
            await runtime.close()

    app = FastAPI(
        title="chat ws-edge", version=VERSION, lifespan=lifespan, **api_docs_urls(settings)
    )

    async def readiness() -> dict[str, bool]:
        edge: Edge | None = getattr(app.state, "edge", None)
        return await edge.readiness() if edge else {"started": False}

    app.include_router(health_router(readiness))
    app.add_middleware(RequestContextMiddleware)

    @app.get("/asyncapi.json", summary="The WebSocket protocol as an AsyncAPI 3.0 document")
    async def asyncapi_document() -> JSONResponse:
        return JSONResponse(asyncapi.document())

    internal = internal_router()

    @internal.get("/stats")
    async def stats(edge: EdgeDep) -> JSONResponse:
        return JSONResponse(
            {
                "edgeId": settings.edge_id,
                "connections": len(edge.registry),
                "users": edge.registry.user_count,
                # Delivery shards bound to this edge's queue (docs/edge.md).
                "deliveryShardsBound": edge.registry.shards.bound,
                "rssBytes": resident_set_bytes(),
                # What the benchmarks compare their figures with.
                "limits": {
                    "frameRatePerSecond": settings.frame_rate_per_second,
                    "frameBurst": settings.frame_burst,
                    "abuseCloseAfterSeconds": settings.abuse_close_after_seconds,
                    "outboundMaxBytes": settings.outbound_max_bytes,
                    "outboundMaxFrames": settings.outbound_max_frames,
                    "maxSockets": settings.max_sockets,
                },
            }
        )

    place_internal(app, internal, settings)
    return EdgeApp(app)


class EdgeApp:
    """The edge's ASGI app: WebSocket sessions here, everything else to FastAPI."""

    def __init__(self, api: FastAPI) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # /ws/{userId} is served here, outside FastAPI's router and middleware: their frames
        # stay alive for a socket's whole life, about 11 KiB per idle connection.
        if scope["type"] == "websocket" and scope["path"].startswith(WS_PREFIX):
            user_id = scope["path"][len(WS_PREFIX) :]
            if user_id and "/" not in user_id:
                await run_session(self.api.state.edge, scope, receive, send, user_id)
                return
        await self.api(scope, receive, send)

    async def drain(self) -> None:
        edge: Edge | None = getattr(self.api.state, "edge", None)
        if edge is not None:
            await edge.drain()


def main() -> None:
    args = parse_address("chat WebSocket edge", 8000, EdgeSettings, "ws-edge")
    settings = EdgeSettings()
    configure_logging("ws-edge", settings.log_level, settings.log_format)
    host = listen_host("ws-edge", args.host, settings)
    app = create_app(settings)
    serve(
        app,
        host,
        args.port,
        before_exit=app.drain,
        internal=internal_listener(app.api, settings, host),
        # uvicorn's websockets-sansio protocol, holding less per idle socket (protocol.py).
        ws=LeanWebSocketProtocol,
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ping_interval_seconds,
        ws_ping_timeout=settings.ping_timeout_seconds,
    )
