"""The Docker Engine behind the gate: HTTP over its socket (or TCP, for tests), with a timeout.

The only I/O towards Docker. Every request is built by the gate's server from a checked
``Op``; nothing here looks at what a client sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp


class DockerDown(Exception):
    """The engine did not answer (unreachable, or slower than the timeout)."""

    def __init__(self, status: int, message: str):
        self.status = status  # 502 unreachable, 504 too slow
        super().__init__(message)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Upstream:
    """One kept-alive session to the engine. ``docker`` is ``unix:///path`` or ``tcp://host:port``."""

    def __init__(self, docker: str, timeout: float):
        parts = urlsplit(docker)
        if parts.scheme == "unix":
            self._connector_args: dict[str, Any] = {"unix": parts.path}
            self._base = "http://docker"
        elif parts.scheme in ("tcp", "http") and parts.hostname and parts.port:
            self._connector_args = {}
            self._base = f"http://{parts.hostname}:{parts.port}"
        else:
            raise ValueError(f"--docker must be unix:///path or tcp://host:port (got {docker!r})")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        unix = self._connector_args.get("unix")
        connector = aiohttp.UnixConnector(path=unix) if unix else aiohttp.TCPConnector()
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def stream(self, path: str, params: dict[str, str]) -> aiohttp.ClientResponse:
        """A long-lived GET (the event stream): no total timeout, only one to connect. The caller
        reads it and releases it."""
        assert self._session is not None, "Upstream.start() first"
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout.total, sock_read=None)
        try:
            return await self._session.get(self._base + path, params=params, timeout=timeout, allow_redirects=False)
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            raise DockerDown(502, f"Docker is unreachable: {type(err).__name__}: {str(err)[:160]}") from None

    async def call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                   body: Any = None) -> Answer:
        assert self._session is not None, "Upstream.start() first"
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            async with self._session.request(method, self._base + path, params=params, data=data,
                                             headers=headers, allow_redirects=False) as resp:
                return Answer(resp.status, await resp.read(), resp.headers.get("Content-Type", ""))
        except TimeoutError:
            raise DockerDown(504, f"Docker did not answer within {self._timeout.total}s") from None
        except (aiohttp.ClientError, OSError) as err:
            raise DockerDown(502, f"Docker is unreachable: {type(err).__name__}: {str(err)[:160]}") from None
