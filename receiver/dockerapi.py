"""The Docker adapter: docker-py behind the ``Swarm`` protocol. It reads and writes; it never decides.

Blocking: the receiver calls it through ``AsyncSwarm``. Docker failures become ``SwarmError``
subclasses (``domain.py``) with a ``kind`` for the metrics and the HTTP status when there is one.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import docker
import docker.errors
import requests.exceptions

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

READINESS_PROBE_NAME = "swarm-autoscaler-readiness-probe"  # a name no service has: an empty list
# UpdateStatus states of a rolling update (or rollback) not finished, paused ones included: a
# scale then would become the PreviousSpec that `docker service rollback` returns to (seen on
# this engine: after a scale mid-update, rollback kept the new image).
UPDATE_IN_PROGRESS_STATES = frozenset({"updating", "paused", "rollback_started", "rollback_paused"})


def translate(err: Exception) -> SwarmError:
    """The ``SwarmError`` for an exception docker-py (or requests under it) raised."""
    if isinstance(err, SwarmError):
        return err
    if isinstance(err, docker.errors.NotFound):
        return ServiceNotFound(str(err), 404)
    if isinstance(err, docker.errors.APIError):
        if "update out of sequence" in str(err):
            return UpdateConflict(str(err))
        return SwarmError(str(err), err.status_code)
    if isinstance(err, requests.exceptions.Timeout):
        return DockerTimeout(str(err))
    if isinstance(err, (requests.exceptions.ConnectionError, docker.errors.DockerException, OSError)):
        return DockerUnavailable(str(err))
    return SwarmError(f"{type(err).__name__}: {err}")


def connect(base_url: str | None, timeout: float) -> docker.APIClient:
    """A docker-py client for ``base_url`` (None: DOCKER_HOST, else the local socket)."""
    if base_url:
        return docker.APIClient(base_url=base_url, version="auto", timeout=timeout)
    return docker.from_env(version="auto", timeout=timeout).api


def service_tasks(api: docker.APIClient, service_id: str) -> list[dict[str, Any]]:
    """The tasks a snapshot counts. Desired "ready": a replacement for a failed task, or for one of
    a lost node, waiting out the restart delay; it is on its way, like a task that is starting."""
    tasks: list[dict[str, Any]] = api.tasks(filters={"service": service_id, "desired-state": ["running", "ready"]})
    return tasks


def read_service(api: docker.APIClient, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
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
    """docker-py behind the ``Swarm`` protocol.

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
                self._client = connect(self._base_url, self._timeout)
            except Exception as err:  # docker-py raises DockerException wrapping anything
                raise translate(err) from err
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
            raise translate(err) from err

    def with_tasks(self, snapshot: ServiceSnapshot) -> ServiceSnapshot:
        """The snapshot with its tasks read now (running count, pending since)."""
        try:
            running, pending_since = task_counts(service_tasks(self._api(), snapshot.id))
        except Exception as err:
            raise translate(err) from err
        return replace(snapshot, running=running, pending_since=pending_since, from_copy=False)

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
            self._api().services(filters={"name": READINESS_PROBE_NAME})
        except docker.errors.APIError as err:
            return NodeStatus(status.swarm_state, status.manager, leader_reachable=False, error=str(err)[:200])
        except Exception as err:
            raise translate(err) from err
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
