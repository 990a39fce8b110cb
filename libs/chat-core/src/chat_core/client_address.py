"""Who the client is, by address: the peer, or the address a trusted proxy says it forwarded.

`X-Forwarded-For` is believed only when the peer is a listed proxy (TRUSTED_PROXIES); anyone
else can write that header. Proxies append, so the client is the rightmost address that is
not itself a trusted proxy.
"""

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class ClientAddresses:
    def __init__(self, trusted_proxies: Iterable[str], exempt: Iterable[str] = ()) -> None:
        self._proxies = _networks(trusted_proxies)
        self._exempt = _networks(exempt)

    def resolve(self, scope: Scope) -> str | None:
        """The client's address, or None when the server does not know the peer."""
        client = scope.get("client")
        if not client:
            return None
        address = str(client[0])
        if not _within(address, self._proxies):
            return address
        forwarded: list[str] = [
            value.decode("latin-1")
            for name, value in scope.get("headers", [])
            if name == b"x-forwarded-for"
        ]
        hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not _within(hop, self._proxies):
                return hop
        return address

    def is_exempt(self, address: str) -> bool:
        return _within(address, self._exempt)
