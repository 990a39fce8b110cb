"""Running a service's ASGI app, and the /healthz and /readyz routes they all serve."""

import argparse
from collections.abc import Awaitable, Callable

import uvicorn
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


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


def parse_address(description: str, default_port: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default=None, help="interface to bind (default: settings HOST)")
    parser.add_argument("--port", type=int, default=default_port)
    return parser.parse_args()


def serve(app: ASGIApp, host: str, port: int, **options: object) -> None:
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=5,
        # uvicorn would believe X-Forwarded-For from loopback; chat_core.client_address
        # decides instead, from TRUSTED_PROXIES only.
        proxy_headers=False,
        **options,  # type: ignore[arg-type]
    )
