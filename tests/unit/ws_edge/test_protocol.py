"""The lean WebSocket protocol: its inbox and write gate behave as the asyncio primitives they
replace, and uvicorn's protocol still has the shape the subclass relies on."""

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from ws_edge.protocol import LeanWebSocketProtocol, _Gate, _Inbox


async def app(_scope: Any, _receive: Any, _send: Any) -> None:
    return None


def protocol(cls: type[WebSocketsSansIOProtocol]) -> WebSocketsSansIOProtocol:
    config = Config(app, ws=cls, lifespan="off")
    config.load()
    return cls(config, ServerState(), {}, _loop=asyncio.get_running_loop())


async def test_uvicorn_still_has_the_parts_the_lean_protocol_replaces() -> None:
    # If uvicorn renames or retypes these, the subclass would silently keep its memory.
    stock = protocol(WebSocketsSansIOProtocol)
    assert isinstance(stock.queue, asyncio.Queue)
    assert isinstance(stock.writable, asyncio.Event)
    lean = protocol(LeanWebSocketProtocol)
    assert isinstance(lean.queue, _Inbox)
    assert isinstance(lean.writable, _Gate)
    assert lean.writable.is_set()


async def test_the_inbox_hands_messages_over_in_order_to_a_waiting_reader() -> None:
    inbox = _Inbox()
    assert inbox.empty()
    reading = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait({"type": "websocket.connect"})
    inbox.put_nowait({"type": "websocket.disconnect"})

    assert await reading == {"type": "websocket.connect"}
    assert not inbox.empty()
    assert await inbox.get() == {"type": "websocket.disconnect"}
    assert inbox.empty()


async def test_a_cancelled_read_loses_nothing() -> None:
    inbox = _Inbox()
    reading = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    inbox.put_nowait("later")
    assert await inbox.get() == "later"


async def test_the_gate_holds_writers_while_closed_and_lets_them_all_go() -> None:
    gate = _Gate()
    await asyncio.wait_for(gate.wait(), 0.1)  # open: no wait
    gate.clear()
    writers = [asyncio.create_task(gate.wait()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in writers)

    gate.set()

    await asyncio.wait_for(asyncio.gather(*writers), 0.1)
    assert gate.is_set()


class Transport:
    """What the protocol writes to, recorded."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


async def test_a_frame_is_written_at_once_only_on_an_open_socket_with_room() -> None:
    lean = protocol(LeanWebSocketProtocol)
    assert isinstance(lean, LeanWebSocketProtocol)
    transport = Transport()
    lean.transport = transport  # type: ignore[assignment]
    assert not lean.write_text_now("early"), "before the handshake nothing may be written"

    lean.handshake_complete = True
    lean.conn.state = lean.conn.state.OPEN
    assert lean.write_text_now('{"event":"heartbeat_ack"}')
    assert transport.written[-1].endswith(b'{"event":"heartbeat_ack"}')

    lean.writable.clear()  # the transport is over its high-water mark
    assert not lean.write_text_now("later")
    lean.writable.set()
    lean.close_sent = True
    assert not lean.write_text_now("after close")
    assert len(transport.written) == 1
