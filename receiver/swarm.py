"""The Docker adapter: read a service, set its replicas. It never decides.

``DockerSwarm`` is the blocking adapter over docker-py; ``AsyncSwarm`` runs its calls off the
event loop, one at a time, each within the configured timeout, and reports their latency and
errors. Docker failures become ``SwarmError`` subclasses with a ``kind`` for the metrics.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import docker
import docker.errors
import requests.exceptions

T = TypeVar("T")

READINESS_PROBE_NAME = "swarm-autoscaler-readiness-probe"  # a name no service has: an empty list

# Swarm configs that hold each service's record (see state.py): name prefix and labels.
RECORD_PREFIX = "swarm-autoscaler-record-"
RECORD_LABEL = "swarm-autoscaler.record-of"
RECORD_SEQ_LABEL = "swarm-autoscaler.record-seq"


class SwarmError(Exception):
    """A Docker call failed. ``kind`` names the failure for metrics and answers."""

    kind = "api_error"


class DockerUnavailable(SwarmError):
    kind = "unavailable"


class DockerTimeout(SwarmError):
    kind = "timeout"


class UpdateConflict(SwarmError):
    """The service changed since it was read (``update out of sequence``)."""

    kind = "conflict"


class ServiceNotFound(SwarmError):
    kind = "not_found"


@dataclass(frozen=True)
class ServiceSnapshot:
    id: str
    name: str
    version: int
    mode: str  # "replicated", "global", or whatever else the engine reports
    replicas: int  # 0 for modes other than replicated
    running: int  # tasks desired running and running
    pending_since: float | None  # oldest task desired running but not running, epoch seconds
    labels: dict[str, str]
    spec: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class NodeStatus:
    swarm_state: str  # "active", "inactive", "pending", "error", "locked"
    manager: bool  # this engine is a manager (ControlAvailable)
    leader_reachable: bool = True  # the swarm API answers: the managers have a leader (quorum)
    error: str = ""


class Swarm(Protocol):
    """What the scaler needs from Docker: two calls and a health probe."""

    def inspect(self, name: str) -> ServiceSnapshot: ...

    def set_replicas(self, snapshot: ServiceSnapshot, replicas: int, labels: dict[str, str]) -> None: ...

    def node_status(self) -> NodeStatus: ...

    def read_record(self, name: str) -> dict[str, Any] | None: ...

    def write_record(self, name: str, record: dict[str, Any]) -> None: ...


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_docker_time(value: str) -> float:
    """Epoch seconds from Docker's RFC 3339 timestamps (nanosecond fractions allowed)."""
    return datetime.fromisoformat(_FRACTION.sub(r"\1", value).replace("Z", "+00:00")).timestamp()


def _translate(err: Exception) -> SwarmError:
    if isinstance(err, SwarmError):
        return err
    if isinstance(err, docker.errors.NotFound):
        return ServiceNotFound(str(err))
    if isinstance(err, docker.errors.APIError):
        if "update out of sequence" in str(err):
            return UpdateConflict(str(err))
        return SwarmError(str(err))
    if isinstance(err, requests.exceptions.Timeout):
        return DockerTimeout(str(err))
    if isinstance(err, (requests.exceptions.ConnectionError, docker.errors.DockerException, OSError)):
        return DockerUnavailable(str(err))
    return SwarmError(f"{type(err).__name__}: {err}")


class DockerSwarm:
    """docker-py behind the ``Swarm`` protocol. Blocking: call it through ``AsyncSwarm``.

    The client is made on first use (docker-py asks the engine its API version when it is
    made), so the receiver starts, and reports not ready, while Docker is down.
    """

    def __init__(self, base_url: str | None, timeout: float):
        self._base_url = base_url
        self._timeout = timeout
        self._client: docker.APIClient | None = None

    def _api(self) -> docker.APIClient:
        if self._client is None:
            try:
                if self._base_url:
                    self._client = docker.APIClient(base_url=self._base_url, version="auto", timeout=self._timeout)
                else:
                    self._client = docker.from_env(version="auto", timeout=self._timeout).api
            except Exception as err:  # docker-py raises DockerException wrapping anything
                raise _translate(err) from err
        return self._client

    def inspect(self, name: str) -> ServiceSnapshot:
        try:
            api = self._api()
            service = api.inspect_service(name)
            if service["Spec"].get("Name") != name:
                # inspect_service also matches IDs and ID prefixes: only the exact name counts.
                raise ServiceNotFound(f"no service named {name!r}")
            # Desired "ready": a replacement for a failed task, or for one of a lost node, waiting
            # out the restart delay; it is on its way, like a task that is still starting.
            tasks = api.tasks(filters={"service": service["ID"], "desired-state": ["running", "ready"]})
        except Exception as err:
            raise _translate(err) from err
        spec = service["Spec"]
        mode_spec = spec.get("Mode", {})
        mode = next(iter(mode_spec), "unknown").lower()
        replicas = int(mode_spec.get("Replicated", {}).get("Replicas", 0)) if mode == "replicated" else 0
        def is_running(t: dict[str, Any]) -> bool:
            return t.get("DesiredState") == "running" and t.get("Status", {}).get("State") == "running"

        running = [t for t in tasks if is_running(t)]
        pending = [parse_docker_time(t["CreatedAt"]) for t in tasks if not is_running(t)]
        return ServiceSnapshot(
            id=service["ID"],
            name=name,
            version=int(service["Version"]["Index"]),
            mode=mode,
            replicas=replicas,
            running=len(running),
            pending_since=min(pending) if pending else None,
            labels=dict(spec.get("Labels") or {}),
            spec=spec,
        )

    def set_replicas(self, snapshot: ServiceSnapshot, replicas: int, labels: dict[str, str]) -> None:
        """Write replicas and service labels in one update carrying the inspected version.

        The rest of the spec goes back exactly as it was read; if anything changed since,
        the engine refuses with ``update out of sequence`` (``UpdateConflict``).
        """
        spec = copy.deepcopy(snapshot.spec)
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        spec["Labels"] = {**(spec.get("Labels") or {}), **labels}
        try:
            self._api().update_service(
                snapshot.id,
                version=snapshot.version,
                name=spec["Name"],
                labels=spec["Labels"],
                mode=spec["Mode"],
                task_template=spec.get("TaskTemplate"),
                update_config=spec.get("UpdateConfig"),
                rollback_config=spec.get("RollbackConfig"),
                endpoint_spec=spec.get("EndpointSpec"),
                fetch_current_spec=False,
            )
        except Exception as err:
            raise _translate(err) from err

    def node_status(self) -> NodeStatus:
        try:
            swarm = self._api().info().get("Swarm") or {}
        except Exception as err:
            raise _translate(err) from err
        status = NodeStatus(swarm_state=swarm.get("LocalNodeState", "inactive"), manager=bool(swarm.get("ControlAvailable")))
        if status.swarm_state != "active" or not status.manager:
            return status
        # `docker info` answers on a manager that lost quorum; listing services needs the leader.
        try:
            self._api().services(filters={"name": READINESS_PROBE_NAME})
        except docker.errors.APIError as err:
            return NodeStatus(status.swarm_state, status.manager, leader_reachable=False, error=str(err)[:200])
        except Exception as err:
            raise _translate(err) from err
        return status


    # The redeploy-proof record: a Swarm config per write (configs are immutable), labelled with
    # the service name; the newest one counts and older ones are removed after each write.

    def _records(self, name: str) -> list[dict[str, Any]]:
        configs = self._api().configs(filters={"label": [f"{RECORD_LABEL}={name}"]})
        return sorted(configs, key=lambda c: int(c["Spec"]["Labels"].get(RECORD_SEQ_LABEL, "0")))

    def read_record(self, name: str) -> dict[str, Any] | None:
        try:
            records = self._records(name)
            if not records:
                return None
            data = base64.b64decode(records[-1]["Spec"].get("Data", ""))
            return json.loads(data)
        except (ValueError, KeyError) as err:
            raise SwarmError(f"unreadable record for {name}: {err}") from err
        except Exception as err:
            raise _translate(err) from err

    def write_record(self, name: str, record: dict[str, Any]) -> None:
        seq = time.time_ns() // 1_000_000
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        try:
            api = self._api()
            api.create_config(
                f"{RECORD_PREFIX}{digest}-{seq}",
                json.dumps(record, sort_keys=True).encode(),
                labels={RECORD_LABEL: name, RECORD_SEQ_LABEL: str(seq)},
            )
            for old in self._records(name)[:-1]:
                try:
                    api.remove_config(old["ID"])
                except docker.errors.NotFound:
                    pass  # another receiver removed it first
        except Exception as err:
            raise _translate(err) from err

Observer = Callable[[str, float, "SwarmError | None"], None]


class AsyncSwarm:
    """Runs a blocking ``Swarm`` on one worker thread (docker-py is not thread-safe), each call
    bounded by ``timeout``, reporting ``(operation, seconds, error)`` to ``observe``."""

    def __init__(self, swarm: Swarm, timeout: float, observe: Observer | None = None):
        self._swarm = swarm
        self._timeout = timeout
        self._observe = observe or (lambda op, seconds, err: None)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docker")

    async def _call(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        error: SwarmError | None = None
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._executor, fn, *args), self._timeout)
        except TimeoutError:
            error = DockerTimeout(f"{operation} took longer than {self._timeout}s")
            raise error from None
        except SwarmError as err:
            error = err
            raise
        finally:
            self._observe(operation, time.perf_counter() - start, error)

    async def inspect(self, name: str) -> ServiceSnapshot:
        return await self._call("inspect", self._swarm.inspect, name)

    async def set_replicas(self, snapshot: ServiceSnapshot, replicas: int, labels: dict[str, str]) -> None:
        await self._call("update", self._swarm.set_replicas, snapshot, replicas, labels)

    async def node_status(self) -> NodeStatus:
        return await self._call("node_status", self._swarm.node_status)

    async def read_record(self, name: str) -> dict[str, Any] | None:
        return await self._call("read_record", self._swarm.read_record, name)

    async def write_record(self, name: str, record: dict[str, Any]) -> None:
        await self._call("write_record", self._swarm.write_record, name, record)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
