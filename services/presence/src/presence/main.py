"""presence: per-user presence across devices and edges, broadcast to contacts, over HTTP."""

import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI

from chat_core import VERSION
from chat_core.auth import build_authenticator
from chat_core.background import BackgroundJobs
from chat_core.broker import EDGES, PRESENCE
from chat_core.events import inbound_event_adapter
from chat_core.http_errors import REST_ERRORS
from chat_core.internal import api_docs_urls, internal_router, place_internal
from chat_core.logs import configure_logging
from chat_core.request_context import RequestContextMiddleware
from chat_core.rest_guard import guard_rest_api
from chat_core.runtime import Runtime
from chat_core.server import (
    health_router,
    internal_listener,
    listen_host,
    parse_address,
    serve,
)
from presence.config import PresenceSettings
from presence.consumer import presence_handler
from presence.routes import router
from presence.service import PresenceService
from presence.sweep import schedule_sweeps

log = structlog.get_logger(__name__)


def create_app(settings: PresenceSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        authenticator = build_authenticator(settings)
        runtime = await Runtime.start(settings, "presence")
        service = PresenceService.build(settings, runtime, authenticator)
        app.state.presence = service
        handler = presence_handler(service.tracker, service.contacts)
        broker = runtime.broker
        store = service.tracker.store

        def ownership_may_have_moved(*_: object) -> None:
            # A partition's single active consumer may be another process now: what this one
            # holds in memory may be behind what that one stored.
            store.forget()

        for queue in (PRESENCE, EDGES):
            consumed = await broker.consume(
                queue, inbound_event_adapter, handler, prefetch=settings.broker_prefetch
            )
            if queue == PRESENCE:
                consumed.channel.close_callbacks.add(ownership_may_have_moved)

        async def reconnected() -> None:
            ownership_may_have_moved()

        broker.on_reconnect(reconnected)
        await broker.consume_broadcasts(PRESENCE, inbound_event_adapter, handler)
        service.consuming = True
        jobs = BackgroundJobs()
        schedule_sweeps(jobs, broker, service.tracker, settings.sweep_interval_seconds)
        log.info(
            "presence started",
            edge_timeout_seconds=settings.edge_timeout_seconds,
            connection_idle_timeout_seconds=settings.connection_idle_timeout_seconds,
            sweep_interval_seconds=settings.sweep_interval_seconds,
        )
        try:
            yield
        finally:
            await jobs.stop()
            service.consuming = False
            # What is unwritten belongs to unacknowledged events: redelivered either way,
            # but a clean stop leaves the stored copy current.
            await store.flushed()
            # Unacked events go back to the queue and are applied again, idempotently.
            await runtime.close()

    app = FastAPI(
        title="chat presence", version=VERSION, lifespan=lifespan, **api_docs_urls(settings)
    )

    async def readiness() -> dict[str, bool]:
        service: PresenceService | None = getattr(app.state, "presence", None)
        return await service.readiness() if service else {"started": False}

    app.include_router(health_router(readiness))
    place_internal(app, internal_router(), settings)
    app.include_router(router, responses=REST_ERRORS)
    app.add_middleware(RequestContextMiddleware)
    guard_rest_api(app, settings)
    return app


def main() -> None:
    args = parse_address("chat presence service", 8002, PresenceSettings, "presence")
    settings = PresenceSettings()
    configure_logging("presence", settings.log_level, settings.log_format)
    host = listen_host("presence", args.host, settings)
    app = create_app(settings)
    serve(app, host, args.port, internal=internal_listener(app, settings, host))
