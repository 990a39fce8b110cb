"""Open sockets per client address, so one address cannot hold all of an edge's sockets."""


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
