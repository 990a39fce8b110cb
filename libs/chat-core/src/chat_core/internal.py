"""The internal endpoints: /metrics, the edge's /stats and the API docs (/docs, /redoc,
/openapi.json). Without ADMIN_PORT they are served on the service's own port, where `make
run`, the tests and chat-bench read them. With it they move to a listener of their own that
a deployment keeps off the load balancer (deploy/haproxy.cfg refuses these paths as well), so
the public port answers them 404."""

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from chat_core.metrics import metrics_endpoint
from chat_core.settings import ServiceSettings

# What a load balancer must never pass through to a service: these paths exactly, and
# everything under the docs pages (Swagger UI's /docs/oauth2-redirect).
EXACT_PATHS = ("/metrics", "/stats", "/openapi.json")
PREFIXES = ("/docs", "/redoc")
INTERNAL_PATHS = EXACT_PATHS + PREFIXES


def haproxy_deny_rule() -> str:
    """The HAProxy line every public frontend carries (deploy/haproxy.cfg, make run-cluster).
    It matches the decoded path, as the services route on it (%6Detrics is /metrics)."""
    return (
        f"http-request deny deny_status 403 if {{ path,url_dec -m str {' '.join(EXACT_PATHS)} }}"
        f" || {{ path,url_dec -m beg {' '.join(PREFIXES)} }}"
    )


def api_docs_urls(settings: ServiceSettings) -> dict[str, Any]:
    """FastAPI's docs_url, redoc_url and openapi_url: its defaults, or none when ADMIN_PORT
    serves them instead."""
    if settings.admin_port is None:
        return {}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


def internal_router() -> APIRouter:
    """The routes every service keeps internal; a service adds its own (the edge's /stats)."""
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/metrics", metrics_endpoint)
    return router


def place_internal(app: FastAPI, internal: APIRouter, settings: ServiceSettings) -> None:
    """Without ADMIN_PORT, `internal` joins `app`; with it, an app of its own that also serves
    `app`'s OpenAPI document and docs is kept on `app.state.internal_app` for `serve`."""
    if settings.admin_port is None:
        app.include_router(internal)
        app.state.internal_app = None
        return
    admin = FastAPI(
        title=f"{app.title} (internal)", docs_url=None, redoc_url=None, openapi_url=None
    )
    # The service's own state, so a route reads the same objects whichever listener serves it.
    admin.state = app.state
    admin.include_router(internal)

    @admin.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @admin.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

    @admin.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=app.title)

    app.state.internal_app = admin
