"""A TCP proxy in front of a real server that can stop passing the server's bytes on.

A broker under a memory alarm keeps the connection open and answers nothing more; stalling
the server-to-client direction gives a client exactly that, with the real server behind it.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class StallProxy:
    upstream_host: str
    upstream_port: int
    # Set: bytes from the server flow to the client; cleared: they wait.
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def cut(self) -> None:
        """Drop every connection through the proxy (a broker node lost); it still accepts."""
        for task in list(self._tasks):
            task.cancel()

    async def start(self) -> None:
        self.flowing.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.resume()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        to_server = asyncio.create_task(self._pipe(reader, up_writer, None))
        to_client = asyncio.create_task(self._pipe(up_reader, writer, self.flowing))
        self._tasks.update((to_server, to_client))
        for task in (to_server, to_client):
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: asyncio.Event | None
    ) -> None:
        try:
            while data := await reader.read(65536):
                if gate is not None:
                    await gate.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            # Both directions go together: the peer of a cut connection sees it closed.
            with contextlib.suppress(Exception):
                reader.feed_eof()


@contextlib.asynccontextmanager
async def stall_proxy(host: str, port: int) -> AsyncIterator[StallProxy]:
    proxy = StallProxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
