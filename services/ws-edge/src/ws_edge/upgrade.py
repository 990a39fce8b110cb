"""Refusals before the WebSocket upgrade, answered in plain HTTP: a page from an origin that is
not allowed (403), and an address opening sockets too fast (429).

Everything else (tokens, the edge being full) is refused after the upgrade with a close code,
which the client's WebSocket API can read; an HTTP refusal only shows as a failed connect.
"""

import structlog
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from chat_core import metrics
from chat_core.limits import retry_after_header
from ws_edge.edge import Edge

log = structlog.get_logger(__name__)


async def refused_before_upgrade(edge: Edge, socket: WebSocket) -> bool:
    """True when the upgrade was refused (the response is sent)."""
    origin = socket.headers.get("origin")
    if not edge.origins.allows(origin):
        log.info("upgrade refused: origin not allowed", origin=origin[:200] if origin else None)
        metrics.admission("origin_refused")
        await socket.send_denial_response(
            JSONResponse({"detail": "origin not allowed"}, status_code=403)
        )
        return True
    address = edge.addresses.resolve(socket.scope)
    if address is not None and not edge.addresses.is_exempt(address):
        wait = edge.admissions.acquire(address)
        if wait is not None:
            log.info("upgrade refused: too many new sockets from address", address=address)
            metrics.admission("address_rate_limited")
            await socket.send_denial_response(
                JSONResponse(
                    {"detail": "too many new connections from this address; retry later"},
                    status_code=429,
                    headers={"Retry-After": retry_after_header(wait)},
                )
            )
            return True
    return False
