"""A stand-in for an access layer that refuses by what a request does: an HTTP proxy in front of
the Docker socket that answers 403 to every service update and forwards everything else.
(The project's real scale-only gate is another piece of work; this one only refuses.)"""

from __future__ import annotations

import asyncio
import re
import threading

import aiohttp
from aiohttp import web

from devkit.waiting import free_port

UPDATE = re.compile(r"^(/v[0-9.]+)?/services/[^/]+/update$")
REFUSAL = "refused by the test gate: service updates are not allowed"
_HOP = {"host", "content-length", "transfer-encoding", "connection"}


class RefusingGate:
    def __init__(self, socket_path: str = "/var/run/docker.sock"):
        self.socket_path = socket_path
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.refused = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and UPDATE.match(request.path):
            self.refused += 1
            return web.json_response({"message": REFUSAL}, status=403)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.socket_path)) as session:
            async with session.request(request.method, f"http://docker{request.path_qs}", data=body or None,
                                       headers=headers) as upstream:
                payload = await upstream.read()
                out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP | {"content-encoding"}}
                return web.Response(status=upstream.status, body=payload, headers=out)

    async def _start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
