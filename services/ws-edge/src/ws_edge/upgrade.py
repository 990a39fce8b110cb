"""Refusals before the WebSocket upgrade, answered in plain HTTP: a page from an origin that is
not allowed (403), an address opening sockets too fast or holding too many open (429).

Everything else (tokens, the edge being full) is refused after the upgrade with a close code,
which the client's WebSocket API can read; an HTTP refusal only shows as a failed connect.
"""

import contextlib
from collections.abc import AsyncIterator

import structlog
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from chat_core import metrics
from chat_core.limits import retry_after_header
from ws_edge.edge import Edge

log = structlog.get_logger(__name__)

# A socket's lifetime is minutes to hours: "retry later" means a reconnect backoff, not now.
_OPEN_CAP_RETRY_AFTER_SECONDS = 30


class SocketsPerAddress:
    """Open sockets per client address on this edge, each address capped.

    One dict entry per address with a socket open, dropped with its last socket. A carrier
    NAT puts many phones behind one address, so the cap is high; exempt addresses
    (ADMISSION_EXEMPT, loopback by default) are never counted."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._open)

    def open(self, address: str) -> bool:
        count = self._open.get(address, 0)
        if count >= self.cap:
            return False
        self._open[address] = count + 1
        return True

    def close(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)


@contextlib.asynccontextmanager
async def admitted_before_upgrade(
    edge: Edge, socket: WebSocket, open_sockets: SocketsPerAddress
) -> AsyncIterator[bool]:
    """False when the upgrade was refused (the response is sent); True holds one of the
    address's open-socket slots until the block ends."""
    origin = socket.headers.get("origin")
    if not edge.origins.allows(origin):
        log.info("upgrade refused: origin not allowed", origin=origin[:200] if origin else None)
        metrics.admission("origin_refused")
        await socket.send_denial_response(
            JSONResponse({"detail": "origin not allowed"}, status_code=403)
        )
        yield False
        return
    address = edge.addresses.resolve(socket.scope)
    if address is None or edge.addresses.is_exempt(address):
        yield True
        return
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
        yield False
        return
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
        yield False
        return
    try:
        yield True
    finally:
        open_sockets.close(address)
