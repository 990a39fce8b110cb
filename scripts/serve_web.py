"""Serve the built web client (clients/web/dist) for a running stack.

Usage (`make run` starts it on :8080; tests start it on a free port):

    uv run --no-sync python scripts/serve_web.py --port 8080 --ws-url ws://127.0.0.1:8000 \
        --messaging-url http://127.0.0.1:8001 --presence-url http://127.0.0.1:8002

The page reads `config.json` from here to find the services. By default the REST APIs are
reached through this server (`/api/messaging/...`, `/api/presence/...`, a plain forward), so
the browser talks to one origin and needs no CORS; `--direct` points the page at the
services themselves instead (they must then allow this origin). The WebSocket always goes to
the edge directly. `/readyz` answers 200 once the bundle is found.
"""

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

REPO_ROOT = Path(__file__).resolve().parent.parent
DIST = REPO_ROOT / "clients" / "web" / "dist"
# Request headers the APIs read, and response headers a client needs back.
FORWARD_REQUEST = ("authorization", "content-type", "x-request-id", "accept")
FORWARD_RESPONSE = ("content-type", "retry-after", "www-authenticate", "x-request-id")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--dist", type=Path, default=DIST)
    parser.add_argument("--ws-url", default="ws://127.0.0.1:8000")
    parser.add_argument("--messaging-url", default="http://127.0.0.1:8001")
    parser.add_argument("--presence-url", default="http://127.0.0.1:8002")
    parser.add_argument("--direct", action="store_true", help="no proxy: the page calls the APIs")
    parser.add_argument(
        "--reconnect-max-ms", type=int, default=None, help="cap the page's reconnect backoff"
    )
    parser.add_argument("--auth-mode", default=os.environ.get("AUTH_MODE", "dev"))
    return parser.parse_args()


def create_app(args: argparse.Namespace) -> Starlette:
    if not (args.dist / "index.html").is_file():
        raise SystemExit(f"serve_web: no {args.dist}/index.html; run `make web` first")
    upstreams: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        upstreams["messaging"] = httpx.AsyncClient(base_url=args.messaging_url, timeout=30)
        upstreams["presence"] = httpx.AsyncClient(base_url=args.presence_url, timeout=30)
        yield
        for client in upstreams.values():
            await client.aclose()

    async def config(_request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "wsBase": args.ws_url,
                "apiBase": args.messaging_url if args.direct else "api/messaging",
                "presenceBase": args.presence_url if args.direct else "api/presence",
                "authMode": args.auth_mode,
                "backoff": {"maximum": args.reconnect_max_ms} if args.reconnect_max_ms else {},
            },
            headers={"Cache-Control": "no-store"},
        )

    async def ready(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ready"})

    async def forward(request: Request) -> Response:
        upstream = upstreams[request.url.path.split("/")[2]]
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD_REQUEST}
        try:
            answer = await upstream.request(
                request.method,
                "/" + request.path_params["path"],
                params=request.query_params.multi_items(),
                headers=headers,
                content=await request.body(),
            )
        except httpx.HTTPError as error:
            return JSONResponse({"detail": f"upstream unavailable: {error}"}, status_code=502)
        kept = {k: v for k, v in answer.headers.items() if k.lower() in FORWARD_RESPONSE}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route("/config.json", config),
            Route("/readyz", ready),
            Route("/healthz", ready),
            Route("/api/messaging/{path:path}", forward, methods=methods),
            Route("/api/presence/{path:path}", forward, methods=methods),
            Mount("/", StaticFiles(directory=args.dist, html=True)),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    args = parse_args()
    uvicorn.run(create_app(args), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
