"""messaging: the REST API for conversations and messages, the typing and read-receipt
consumers, and the outbox relay, in one process."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pymongo.errors import PyMongoError

from chat_core import VERSION, metrics
from chat_core.auth import build_authenticator
from chat_core.background import BackgroundJobs
from chat_core.broker import is_transient
from chat_core.db import pushes_down_id_prefix
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
from messaging import api
from messaging.config import MessagingSettings
from messaging.rate_limits import RestLimits, enforce_rest_limits
from messaging.relay import relay_round
from messaging.service import Messaging

log = structlog.get_logger(__name__)


def create_app(settings: MessagingSettings) -> FastAPI:
    relay: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal relay
        authenticator = build_authenticator(settings)
        runtime = await Runtime.start(settings, "messaging")
        messaging = Messaging.assemble(settings, runtime, authenticator)
        await messaging.worker.start(runtime.broker, settings.broker_prefetch)
        jobs = BackgroundJobs()
        relay = jobs.every(
            settings.relay_interval_seconds,
            lambda: relay_round(messaging.store, runtime.broker, settings.outbox_min_age_seconds),
            on_failure="outbox relay round failed",
        )
        jobs.every(
            settings.outbox_flush_interval_seconds,
            messaging.store.write_behind.flush,
            on_failure="write-behind flush failed, will retry",
            wait_first=True,
        )
        jobs.every(
            settings.relay_interval_seconds,
            lambda: _sample_outbox(messaging),
            on_failure="outbox sample failed",
        )
        app.state.messaging = messaging
        if not await pushes_down_id_prefix(runtime.db.timeline):
            log.warning(
                "the database scans the whole store for the outbox relay's range of _ids "
                "(a stock FerretDB; MongoDB and devdb use the _id index): rebuild devdb"
            )
        log.info("messaging started")
        try:
            yield
        finally:
            await jobs.stop()
            with contextlib.suppress(Exception):
                await messaging.store.write_behind.flush()
            await runtime.close()

    app = FastAPI(
        title="chat messaging",
        summary="Conversations and messages; new_message, typing and read receipts in real time.",
        version=VERSION,
        lifespan=lifespan,
        **api_docs_urls(settings),
    )

    async def readiness() -> dict[str, bool]:
        messaging: Messaging | None = getattr(app.state, "messaging", None)
        if messaging is None:
            return {"started": False}
        checks = await messaging.runtime.readiness()
        checks["outbox_relay"] = relay is not None and not relay.done()
        return checks

    app.include_router(health_router(readiness))
    place_internal(app, internal_router(), settings)
    app.add_middleware(RequestContextMiddleware)
    app.state.rest_limits = RestLimits(settings)
    app.include_router(
        api.router, responses=REST_ERRORS, dependencies=[Depends(enforce_rest_limits)]
    )
    guard_rest_api(app, settings)

    @app.exception_handler(PyMongoError)
    async def database_unavailable(_request: Request, error: PyMongoError) -> JSONResponse:
        # Contention or a blip is the client's cue to retry (with the same clientMessageId);
        # anything else is a bug and stays a 500.
        if not is_transient(error):
            raise error
        log.warning("database unavailable, answered 503", error=repr(error))
        return JSONResponse(
            {"detail": "database briefly unavailable; retry"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    _document_configured_limits(app, settings)
    return app


async def _sample_outbox(messaging: Messaging) -> None:
    """The outbox's backlog and its oldest entry's age, for /metrics: a healthy outbox holds
    entries for a fraction of a second; a growing one means publishing fails."""
    metrics.outbox_sample(*await messaging.outbox.sample())


def _document_configured_limits(app: FastAPI, settings: MessagingSettings) -> None:
    """The content limit is a setting, checked in the route; state it in the schema too."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            content = document["components"]["schemas"]["SendMessage"]["properties"]["content"]
            content["maxLength"] = settings.max_content_chars
            content["description"] = (
                f"Not blank; at most {settings.max_content_chars} characters (MAX_CONTENT_CHARS)."
            )
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def main() -> None:
    args = parse_address("chat messaging service", 8001, MessagingSettings, "messaging")
    settings = MessagingSettings()
    configure_logging("messaging", settings.log_level, settings.log_format)
    host = listen_host("messaging", args.host, settings)
    app = create_app(settings)
    serve(app, host, args.port, internal=internal_listener(app, settings, host))
