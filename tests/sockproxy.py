"""A TCP proxy in front of the Docker socket that a test can cut and restore (a Docker outage)."""

from __future__ import annotations

import asyncio
import threading

from .processes import free_port


class SocketProxy:
    def __init__(self, unix_path: str = "/var/run/docker.sock"):
        self.unix_path = unix_path
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.restore()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            docker_r, docker_w = await asyncio.open_unix_connection(self.unix_path)
        except OSError:
            client_w.close()
            return
        self._writers.update((client_w, docker_w))
        await asyncio.gather(self._pipe(client_r, docker_w), self._pipe(docker_r, client_w))
        self._writers.difference_update((client_w, docker_w))

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self._run(self._stop())

    def restore(self) -> None:
        self._run(self._start())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
