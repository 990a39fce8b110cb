"""Refusals before the WebSocket upgrade, answered in plain HTTP: a page from an origin that is
not allowed (403), an address opening sockets too fast or holding too many open (429).

Everything else (tokens, the edge being full) is refused after the upgrade with a close code,
which the client's WebSocket API can read; an HTTP refusal only shows as a failed connect.
"""

from dataclasses import dataclass

import structlog
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from chat_core import metrics
from chat_core.limits import retry_after_header
from ws_edge.edge import Edge
from ws_edge.open_sockets import SocketsPerAddress

log = structlog.get_logger(__name__)

# A socket's lifetime is minutes to hours: "retry later" means a reconnect backoff, not now.
_OPEN_CAP_RETRY_AFTER_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Upgrade:
    """An upgrade let through. `address` holds one of that address's open-socket slots until
    `release` (None: an exempt or unknown address, not counted)."""

    address: str | None


async def admit_upgrade(
    edge: Edge, socket: WebSocket, open_sockets: SocketsPerAddress
) -> Upgrade | None:
    """None when the upgrade was refused (the response is sent)."""
    origin = socket.headers.get("origin")
    if not edge.origins.allows(origin):
        log.info("upgrade refused: origin not allowed", origin=origin[:200] if origin else None)
        metrics.admission("origin_refused")
        await socket.send_denial_response(
            JSONResponse({"detail": "origin not allowed"}, status_code=403)
        )
        return None
    address = edge.addresses.resolve(socket.scope)
    if address is None or edge.addresses.is_exempt(address):
        return Upgrade(None)
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
        return None
    if not open_sockets.open(address):
        log.info("upgrade refused: too many open sockets from address", address=address)
        metrics.admission("address_socket_cap")
        await socket.send_denial_response(
            JSONResponse(
                {
                    "detail": f"this address holds {open_sockets.cap} connections to this "
                    "edge already; retry later"
                },
                status_code=429,
                headers={"Retry-After": str(_OPEN_CAP_RETRY_AFTER_SECONDS)},
            )
        )
        return None
    return Upgrade(address)


def release(open_sockets: SocketsPerAddress, upgrade: Upgrade) -> None:
    if upgrade.address is not None:
        open_sockets.close(upgrade.address)
