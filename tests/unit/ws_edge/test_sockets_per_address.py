"""The per-address open-socket count behind the edge's 429 before the upgrade."""

from ws_edge.open_sockets import SocketsPerAddress


def test_an_address_gets_its_cap_and_no_more_and_others_are_apart() -> None:
    sockets = SocketsPerAddress(cap=2)
    assert sockets.open("198.18.0.1")
    assert sockets.open("198.18.0.1")
    assert not sockets.open("198.18.0.1")
    assert sockets.open("198.18.0.2")


def test_a_closed_socket_frees_its_slot_and_an_idle_address_leaves_no_entry() -> None:
    sockets = SocketsPerAddress(cap=1)
    assert sockets.open("198.18.0.1")
    sockets.close("198.18.0.1")
    assert len(sockets) == 0
    assert sockets.open("198.18.0.1")
    # A refused open took no slot: one close empties it.
    assert not sockets.open("198.18.0.1")
    sockets.close("198.18.0.1")
    assert len(sockets) == 0
