"""The Docker adapter: the Engine API over raw HTTP behind the ``Swarm`` protocol. It reads and
writes; it never decides.

``Engine`` is one kept-alive HTTP connection to the engine (its socket, or ``tcp://`` such as the
docker gate), JSON in and out, and only the calls the receiver makes: no SDK, no TLS, nothing
imported that ``autoscaler serve`` does not need. Blocking: the receiver calls ``DockerSwarm``
through ``AsyncSwarm``. Docker failures become ``SwarmError`` subclasses (``domain.py``) with a
``kind`` for the metrics and the HTTP status when there is one.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from . import record_store
from .domain import (
    DockerTimeout,
    DockerUnavailable,
    NodeStatus,
    ServiceNotFound,
    ServiceSnapshot,
    SwarmError,
    UpdateConflict,
)
from .timeutil import parse_rfc3339

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
READINESS_PROBE_NAME = "swarm-autoscaler-readiness-probe"  # a name no service has: an empty list
# UpdateStatus states of a rolling update (or rollback) not finished, paused ones included: a
# scale then would become the PreviousSpec that `docker service rollback` returns to (seen on
# this engine: after a scale mid-update, rollback kept the new image).
UPDATE_IN_PROGRESS_STATES = frozenset({"updating", "paused", "rollback_started", "rollback_paused"})


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def engine_error(status: int, reason: str, what: str, body: bytes) -> SwarmError:
    """The ``SwarmError`` for an engine's error answer (its JSON ``message``, as docker-py showed it)."""
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace")[:300]
    text = f"{status} {reason} for {what}: {message!r}"
    if status == 404:
        return ServiceNotFound(text, 404)
    if "update out of sequence" in message:
        return UpdateConflict(text)
    return SwarmError(text, status)


@dataclass(frozen=True)
class Target:
    """Where the engine listens: ``unix:///path``, ``tcp://host:port`` or ``http://host:port``
    (None: ``DOCKER_HOST``, else the local socket)."""

    url: str
    socket_path: str | None
    host: str
    port: int

    @classmethod
    def of(cls, base_url: str | None) -> Target:
        url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return cls(url, parts.path, "localhost", 80)
        if parts.scheme in ("tcp", "http") and parts.hostname:
            return cls(url, None, parts.hostname, parts.port or 2375)
        raise DockerUnavailable(f"Docker at {url!r}: only unix:///path and tcp://host:port are supported (no TLS)")


class Engine:
    """The Engine API over one kept-alive HTTP connection. The API version is the engine's own,
    asked once (as docker-py's ``version="auto"``). Blocking and not thread-safe: one caller at a
    time (each thread of the receiver has its own)."""

    def __init__(self, base_url: str | None, timeout: float):
        self._conn: http.client.HTTPConnection | None = None
        self.target = Target.of(base_url)
        self.url = self.target.url
        self._timeout = timeout
        self._prefix: str | None = None

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.target.socket_path is not None:
            return _UnixConnection(self.target.socket_path, timeout)
        return http.client.HTTPConnection(self.target.host, self.target.port, timeout=timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __del__(self) -> None:
        self.close()  # a client dropped without close() does not leave its socket to the collector

    def _send(self, method: str, path: str, data: bytes | None) -> tuple[http.client.HTTPResponse, bytes]:
        """One exchange on the kept connection; a kept connection the other side closed meanwhile
        (an idle timeout) is replaced once. Sending a request again is safe here: an update carries
        the version it was read at, and a config's name is unique."""
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connection(self._timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                body = response.read()
            except TimeoutError:
                self.close()
                raise DockerTimeout(f"{method} {path}: no answer within {self._timeout}s") from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as err:
                self.close()
                if reused and attempt == 1:
                    continue
                raise DockerUnavailable(f"{method} {path}: {type(err).__name__}: {err}") from None
            except (OSError, http.client.HTTPException) as err:
                self.close()
                raise DockerUnavailable(f"Docker at {self.url}: {type(err).__name__}: {err}") from None
            if response.will_close:
                self.close()
            return response, body
        raise AssertionError("unreachable")

    def _path(self, path: str, params: dict[str, Any] | None) -> str:
        if self._prefix is None:
            version = self._call("GET", "/version", versioned=False)
            self._prefix = f"/v{version['ApiVersion']}"
        query = f"?{urlencode(params)}" if params else ""
        return f"{self._prefix}{path}{query}"

    def _call(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None,
              *, versioned: bool = True) -> Any:
        full = self._path(path, params) if versioned else path
        data = None if body is None else json.dumps(body).encode()
        response, answer = self._send(method, full, data)
        if response.status >= 400:
            raise engine_error(response.status, response.reason, f"{method} {full}", answer)
        return json.loads(answer) if answer else None

    # --- the calls the receiver makes ---------------------------------------------------------

    def inspect_service(self, ref: str) -> dict[str, Any]:
        service: dict[str, Any] = self._call("GET", f"/services/{quote(ref, safe='')}")
        return service

    def services(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        services: list[dict[str, Any]] = self._call("GET", "/services", {"filters": json.dumps(filters)})
        return services

    def tasks(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = self._call("GET", "/tasks", {"filters": json.dumps(filters)})
        return tasks

    def update_service(self, service_id: str, version: int, spec: dict[str, Any]) -> None:
        """Replaces the whole spec; refused (``UpdateConflict``) unless ``version`` is the current one."""
        self._call("POST", f"/services/{quote(service_id, safe='')}/update", {"version": version}, spec)

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._call("GET", "/info")
        return info

    def configs(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        configs: list[dict[str, Any]] = self._call("GET", "/configs", {"filters": json.dumps(filters)})
        return configs

    def create_config(self, name: str, data: bytes, labels: dict[str, str]) -> None:
        self._call("POST", "/configs/create", body={"Name": name, "Labels": labels,
                                                    "Data": base64.b64encode(data).decode()})

    def remove_config(self, config_id: str) -> None:
        self._call("DELETE", f"/configs/{quote(config_id, safe='')}")


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
        await self.call("POST", f"/services/{quote(snapshot.id, safe='')}/update", {"version": snapshot.version},
                        update_spec(snapshot, replicas, labels))

    async def read_service(self, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """As ``read_service``: the service of exactly this name and its tasks."""
        service: dict[str, Any] = await self.call("GET", f"/services/{quote(name, safe='')}")
        if service["Spec"].get("Name") != name:
            raise ServiceNotFound(f"no service named {name!r}", 404)
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


def connect(base_url: str | None, timeout: float) -> Engine:
    """An engine client for ``base_url`` (None: DOCKER_HOST, else the local socket). It connects
    on its first call."""
    return Engine(base_url, timeout)


def translate(err: Exception) -> SwarmError:
    """The ``SwarmError`` for any exception a call raised (the engine client raises them already)."""
    if isinstance(err, SwarmError):
        return err
    if isinstance(err, TimeoutError):
        return DockerTimeout(str(err))
    if isinstance(err, OSError):
        return DockerUnavailable(str(err))
    return SwarmError(f"{type(err).__name__}: {err}")


def task_filters(*service_ids: str) -> dict[str, list[str]]:
    """The tasks a snapshot counts. Desired "ready": a replacement for a failed task, or for one of
    a lost node, waiting out the restart delay; it is on its way, like a task that is starting."""
    return {"service": list(service_ids), "desired-state": ["running", "ready"]}


def service_tasks(api: Engine, service_id: str) -> list[dict[str, Any]]:
    return api.tasks(task_filters(service_id))


def read_service(api: Engine, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The service of exactly this name and its tasks; ``ServiceNotFound`` when there is none
    (inspect also matches IDs and ID prefixes: only the exact name counts)."""
    service = api.inspect_service(name)
    if service["Spec"].get("Name") != name:
        raise ServiceNotFound(f"no service named {name!r}", 404)
    return service, service_tasks(api, service["ID"])


def _is_running(task: dict[str, Any]) -> bool:
    return task.get("DesiredState") == "running" and task.get("Status", {}).get("State") == "running"


def task_counts(tasks: list[dict[str, Any]]) -> tuple[int, float | None]:
    """Pure: tasks running, and since when the oldest of the others (on their way) exists."""
    pending = [parse_rfc3339(t["CreatedAt"]) for t in tasks if not _is_running(t)]
    return sum(1 for t in tasks if _is_running(t)), min(pending) if pending else None


def update_spec(snapshot: ServiceSnapshot, replicas: int, labels: dict[str, str]) -> dict[str, Any]:
    """Pure: the spec a scale sends, the one read with replicas and these labels replaced. Only the
    two replaced keys are new objects; nothing read is changed in place."""
    spec = snapshot.spec
    return {**spec, "Mode": {"Replicated": {"Replicas": replicas}}, "Labels": {**(spec.get("Labels") or {}), **labels}}


def snapshot_of(service: dict[str, Any], tasks: list[dict[str, Any]]) -> ServiceSnapshot:
    """Pure: the snapshot of an inspected service and its tasks (desired running or ready)."""
    spec = service["Spec"]
    mode_spec = spec.get("Mode", {})
    mode = next(iter(mode_spec), "unknown").lower()
    replicas = int(mode_spec.get("Replicated", {}).get("Replicas", 0)) if mode == "replicated" else 0
    running, pending_since = task_counts(tasks)
    update_state = (service.get("UpdateStatus") or {}).get("State", "")
    return ServiceSnapshot(
        id=service["ID"],
        name=spec.get("Name", ""),
        version=int(service["Version"]["Index"]),
        mode=mode,
        replicas=replicas,
        running=running,
        pending_since=pending_since,
        labels=dict(spec.get("Labels") or {}),
        spec=spec,
        updating=update_state in UPDATE_IN_PROGRESS_STATES,
    )


class DockerSwarm:
    """The engine behind the ``Swarm`` protocol. The connection is made on first use, so the
    receiver starts, and reports not ready, while Docker is down."""

    def __init__(self, base_url: str | None, timeout: float):
        self._base_url = base_url
        self._timeout = timeout
        self._client: Engine | None = None

    def _api(self) -> Engine:
        if self._client is None:
            self._client = connect(self._base_url, self._timeout)
        return self._client

    def inspect(self, name: str) -> ServiceSnapshot:
        try:
            service, tasks = read_service(self._api(), name)
        except Exception as err:
            raise translate(err) from err
        return snapshot_of(service, tasks)

    def set_replicas(self, snapshot: ServiceSnapshot, replicas: int, labels: dict[str, str]) -> None:
        """Write replicas and service labels in one update carrying the inspected version.

        The rest of the spec goes back exactly as it was read; if anything changed since,
        the engine refuses with ``update out of sequence`` (``UpdateConflict``).
        """
        try:
            self._api().update_service(snapshot.id, snapshot.version, update_spec(snapshot, replicas, labels))
        except Exception as err:
            raise translate(err) from err

    def answer_path(self) -> AsyncEngine:
        """A client for the calls on a scale's answer path, made from the event loop."""
        return AsyncEngine(Target.of(self._base_url))

    def node_status(self) -> NodeStatus:
        try:
            swarm = self._api().info().get("Swarm") or {}
        except Exception as err:
            raise translate(err) from err
        status = NodeStatus(swarm_state=swarm.get("LocalNodeState", "inactive"), manager=bool(swarm.get("ControlAvailable")))
        if status.swarm_state != "active" or not status.manager:
            return status
        # `docker info` answers on a manager that lost quorum; listing services needs the leader.
        try:
            self._api().services({"name": [READINESS_PROBE_NAME]})
        except SwarmError as err:
            if err.status is None:  # no answer: not a question of quorum
                raise
            return NodeStatus(status.swarm_state, status.manager, leader_reachable=False, error=str(err)[:200])
        return status

    def read_record(self, name: str) -> dict[str, Any] | None:
        try:
            return record_store.read_record(self._api(), name)
        except Exception as err:
            raise translate(err) from err

    def write_record(self, name: str, record: dict[str, Any], version: int) -> bool:
        try:
            return record_store.write_record(self._api(), name, record, version)
        except Exception as err:
            raise translate(err) from err

    def remove_records(self, name: str) -> int:
        try:
            return record_store.remove_records(self._api(), name)
        except Exception as err:
            raise translate(err) from err
