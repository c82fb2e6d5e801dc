"""The engine from the event loop: ``AsyncEngine``, one kept-alive connection per client (a scale's
update, the watched copy's reads), and ``AsyncEventStream``, the engine's events on a connection
of their own. The HTTP is the little the engine speaks: HTTP/1.1, a body by ``Content-Length``,
chunked, or until the other side closes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from .dockerapi import Target, engine_error
from .domain import DockerUnavailable, ServiceSnapshot
from .swarmspec import named, task_filters, update_spec


class AsyncEngine:
    """The call on a scale's answer path (the update) from the event loop, on a kept-alive
    connection of its own: no thread hop, no thread to wake. One call at a time
    (a lock); the caller bounds each call's time. The HTTP is the little the engine speaks:
    HTTP/1.1, a body by ``Content-Length`` or chunked."""

    def __init__(self, target: Target):
        self.target = target
        self._prefix: str | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.target.socket_path is not None:
            return await asyncio.open_unix_connection(self.target.socket_path)
        return await asyncio.open_connection(self.target.host, self.target.port)

    async def _exchange(self, method: str, path: str, data: bytes) -> tuple[int, str, bytes]:
        """One request and its answer on the kept connection; one the other side closed meanwhile
        is replaced once (safe to send again, as in ``Engine._send``)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: {len(data)}\r\n"
        request = (head + ("Content-Type: application/json\r\n" if data else "") + "\r\n").encode() + data
        for attempt in (1, 2):
            reused = self._writer is not None
            try:
                if self._reader is None or self._writer is None:
                    self._reader, self._writer = await self._open()
                self._writer.write(request)
                return await self._answer(self._reader)
            except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as err:
                self.close()
                if reused and attempt == 1:
                    continue
                raise DockerUnavailable(f"{method} {path}: {type(err).__name__}: {err}") from None
            except (OSError, ValueError) as err:
                self.close()
                raise DockerUnavailable(f"Docker at {self.target.url}: {type(err).__name__}: {err}") from None
            except BaseException:  # cancelled (a timeout) mid-exchange: the connection's state is unknown
                self.close()
                raise
        raise AssertionError("unreachable")

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
        status, reason, headers = await _head(reader)
        body = await _body(reader, headers)
        if headers.get("connection", "").lower() == "close" or not _delimited(headers):
            self.close()
        return status, reason, body

    async def _prefixed(self) -> str:
        """The API version prefix, asked once (call with the lock held)."""
        if self._prefix is None:
            status, reason, answer = await self._exchange("GET", "/version", b"")
            if status >= 400:
                raise engine_error(status, reason, "GET /version", answer)
            self._prefix = f"/v{json.loads(answer)['ApiVersion']}"
        return self._prefix

    async def call(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        async with self._lock:
            full = f"{await self._prefixed()}{path}" + (f"?{urlencode(params)}" if params else "")
            status, reason, answer = await self._exchange(method, full, b"" if body is None else json.dumps(body).encode())
        if status >= 400:
            raise engine_error(status, reason, f"{method} {full}", answer)
        return json.loads(answer) if answer else None

    async def set_replicas(self, snapshot: ServiceSnapshot, replicas: int, labels: dict[str, str]) -> None:
        """As ``DockerSwarm.set_replicas``."""
        await self.call("POST", f"/services/{quote(snapshot.id, safe='')}/update?version={int(snapshot.version)}", None,
                        update_spec(snapshot, replicas, labels))

    async def read_service(self, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """As ``read_service``: the service of exactly this name and its tasks."""
        service = named(await self.call("GET", f"/services/{quote(name, safe='')}"), name)
        return service, await self.tasks(service["ID"])

    async def tasks(self, *service_ids: str) -> list[dict[str, Any]]:
        """The tasks the snapshots of these services count, in one call."""
        tasks: list[dict[str, Any]] = await self.call("GET", "/tasks", {"filters": json.dumps(task_filters(*service_ids))})
        return tasks

    async def events(self, filters: dict[str, Any]) -> AsyncEventStream:
        """The engine's events on a connection of their own (no read timeout: events may be minutes
        apart); the caller bounds the time to open it."""
        async with self._lock:
            path = f"{await self._prefixed()}/events?{urlencode({'filters': json.dumps(filters)})}"
        try:
            reader, writer = await self._open()
        except OSError as err:
            raise DockerUnavailable(f"Docker at {self.target.url}: {type(err).__name__}: {err}") from None
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
            status, reason, headers = await _head(reader)
            if status >= 400:
                raise engine_error(status, reason, f"GET {path}", await _body(reader, headers))
        except (OSError, ValueError, asyncio.IncompleteReadError) as err:
            writer.close()
            raise DockerUnavailable(f"GET {path}: {type(err).__name__}: {err}") from None
        except BaseException:
            writer.close()
            raise
        return AsyncEventStream(reader, writer, headers.get("transfer-encoding", "").lower() == "chunked")


class AsyncEventStream:
    """Events as they come, one JSON object each; ``close`` ends it (a reader waiting sees it end)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunked: bool):
        self._reader = reader
        self._writer = writer
        self._chunked = chunked

    def close(self) -> None:
        self._writer.close()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._events()

    async def _events(self) -> AsyncIterator[dict[str, Any]]:
        pending = b""
        try:
            while data := await self._next():
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except (OSError, ValueError, asyncio.IncompleteReadError) as err:  # a cut or closed stream
            raise DockerUnavailable(f"the event stream broke: {type(err).__name__}: {err}") from None
        finally:
            self.close()

    async def _next(self) -> bytes:
        """The next piece of the body; empty at its end."""
        if not self._chunked:
            return await self._reader.read(65536)
        size_line = await self._reader.readline()
        if not size_line:
            return b""
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b""
        data = await self._reader.readexactly(size)
        await self._reader.readexactly(2)
        return data


async def _head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    """An answer's status and headers (names in lower case), read at once; the other side closing
    before them raises ``IncompleteReadError``."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ValueError("an answer's headers over 64 KiB") from None
    status_line, *lines = head.decode("latin-1").split("\r\n")
    _, status, *reason = status_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return int(status), " ".join(reason), headers


def _delimited(headers: dict[str, str]) -> bool:
    return headers.get("transfer-encoding", "").lower() == "chunked" or "content-length" in headers


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """A whole body: chunked, by Content-Length, or (neither) until the other side closes."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while await reader.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()
