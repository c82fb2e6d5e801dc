"""The Docker adapter: the Engine API over raw HTTP behind the ``Swarm`` protocol. It reads and
writes; it never decides.

``Engine`` is one kept-alive HTTP connection to the engine (its socket, or ``tcp://`` such as the
docker gate), JSON in and out, and only the calls the receiver makes: no SDK, no TLS, nothing
imported that ``autoscaler serve`` does not need. Blocking: the receiver calls ``DockerSwarm``
through ``AsyncSwarm``. Docker failures become ``SwarmError`` subclasses (``domain.py``) with a
``kind`` for the metrics and the HTTP status when there is one.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
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
from .swarmspec import named, snapshot_of, task_filters, update_spec

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
READINESS_PROBE_NAME = "swarm-autoscaler-readiness-probe"  # a name no service has: an empty list


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


def read_service(api: Engine, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The service of exactly this name and its tasks; ``ServiceNotFound`` when there is none."""
    service = named(api.inspect_service(name), name)
    return service, api.tasks(task_filters(service["ID"]))


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

    def target(self) -> Target:
        """Where the engine listens (``asyncengine.AsyncEngine`` reaches it from the event loop)."""
        return Target.of(self._base_url)

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
