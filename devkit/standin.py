"""Stand-in Swarm services (busybox ``sleep``, image built by scripts/setup.sh) for the tests,
the benchmarks and the demo: the one way to create, wait for and remove them with their records."""

from __future__ import annotations

import os
import uuid
from typing import Any

import docker
import docker.errors
from docker.types import Resources, ServiceMode

from receiver.record_store import RECORD_LABEL

from .waiting import wait_for

STANDIN_IMAGE = os.environ.get("STANDIN_IMAGE", "autoscaler-standin:1")


def unique(kind: str = "svc") -> str:
    return f"astest-{kind}-{uuid.uuid4().hex[:8]}"


def create_standin(client: docker.DockerClient, name: str, replicas: int = 1, *, mode: str = "replicated",
                   cpu_limit: float | None = None, stop_grace_period: float = 1.0, **kw: Any) -> Any:
    """A service running ``/bin/sleep`` (which ignores SIGTERM: killed after ``stop_grace_period`` s)."""
    args: dict[str, Any] = {
        "image": STANDIN_IMAGE, "command": ["/bin/sleep", "86400"], "name": name,
        "mode": ServiceMode(mode, replicas=replicas if mode == "replicated" else None),
        "stop_grace_period": int(stop_grace_period * 1e9),
    }
    if cpu_limit:
        args["resources"] = Resources(cpu_limit=int(cpu_limit * 1e9))
    args.update(kw)
    return client.services.create(**args)


def running(client: docker.DockerClient, name: str) -> int:
    """Tasks of ``name`` desired running and running."""
    tasks = client.api.tasks(filters={"service": name, "desired-state": "running"})
    return sum(1 for t in tasks if t["Status"]["State"] == "running")


def wait_running(client: docker.DockerClient, name: str, replicas: int, timeout: float = 90) -> None:
    wait_for(lambda: running(client, name) == replicas, timeout, f"{name} to run {replicas} tasks", 0.1)


def records_of(client: docker.DockerClient, name: str) -> list[Any]:
    """The receiver's records of a service (Swarm configs)."""
    return client.configs.list(filters={"label": [f"{RECORD_LABEL}={name}"]})


def remove_records(client: docker.DockerClient, name: str) -> None:
    for config in records_of(client, name):
        try:
            config.remove()
        except docker.errors.NotFound:
            pass  # a receiver's record write, finishing after its answer, removed it first


def remove_standin(client: docker.DockerClient, name: str) -> None:
    """The service and its records; nothing when already gone."""
    try:
        client.services.get(name).remove()
    except docker.errors.NotFound:
        pass
    remove_records(client, name)
