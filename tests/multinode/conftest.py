"""A real multi-node swarm for the tests of this folder (``devkit.multinode``).

The cluster (3 managers, 2 workers, the stand-in image on each) is built once per module and
torn down after it; the teardown asserts that nothing is left (namespaces, mounts, cgroups,
processes, data). Before each test every node that a previous test killed is started again
and the swarm is healthy; the services and records a test makes are removed after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.types import RestartPolicy

from devkit.multinode import Cluster, Node, leftovers, unwind_on_sigterm
from devkit.standin import STANDIN_IMAGE, create_standin, remove_standin, unique

from ..conftest import report
from ..processes import ReceiverProcess
from ..swarm.conftest import wait_converged

OLLAMA_LABEL = "ollama"
PINNED = f"node.labels.{OLLAMA_LABEL} == true"  # the constraint stack.yml gives Ollama


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "multinode: builds a swarm of several real Docker Engines on this machine")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    host = docker.from_env()
    try:
        host.images.get(STANDIN_IMAGE)  # fails loudly when scripts/setup.sh did not build it
    finally:
        host.close()
    started = time.monotonic()
    logs = tmp_path_factory.mktemp("multinode-logs")
    with unwind_on_sigterm(), Cluster(managers=3, workers=2, images=[STANDIN_IMAGE], log_dir=logs) as built:
        report(f"multi-node swarm: 3 managers + 2 workers (separate dockerds, own network namespaces), "
               f"swarm formed and image loaded on each in {time.monotonic() - started:.1f}s")
        yield built
    assert leftovers(built.prefix) == []


def restore(cluster: Cluster) -> None:
    """Every node running and ready, every manager reachable, a leader: whatever ran before."""
    for node in cluster.nodes.values():
        if not node.running:
            cluster.start(node.name, wait=False)
    cluster.wait_healthy(120)


@pytest.fixture(autouse=True)
def healthy(cluster: Cluster) -> Cluster:
    restore(cluster)
    return cluster


def manager(cluster: Cluster) -> Node:
    """A running manager of the current leader's quorum (the leader itself)."""
    return cluster.leader()


def set_ollama_nodes(cluster: Cluster, *names: str) -> None:
    """Exactly these nodes carry ``ollama=true``."""
    for node in cluster.nodes.values():
        cluster.label(node.name, OLLAMA_LABEL, "true" if node.name in names else None)


def tasks_by_node(cluster: Cluster, service: str) -> dict[str, int]:
    """Running tasks of ``service`` (desired running, state running) per node name."""
    with manager(cluster).api() as api:
        tasks = api.tasks(filters={"service": service, "desired-state": "running"})
    counts: dict[str, int] = {}
    for task in tasks:
        if task["Status"]["State"] == "running":
            name = cluster.name_of(task["NodeID"])
            counts[name] = counts.get(name, 0) + 1
    return counts


def replicas_of(cluster: Cluster, service: str) -> int:
    with manager(cluster).api() as api:
        return api.inspect_service(service)["Spec"]["Mode"]["Replicated"]["Replicas"]


def converge(cluster: Cluster, service: str, replicas: int, timeout: float = 90) -> None:
    client = manager(cluster).client()
    try:
        wait_converged(client, service, replicas, timeout)
    finally:
        client.close()


@pytest.fixture
def pinned_service(cluster: Cluster) -> Iterator[Callable[..., str]]:
    """Create stand-in services pinned to the ``ollama`` nodes, with stack.yml's restart policy."""
    made: list[str] = []

    def make(replicas: int = 1) -> str:
        name = unique("mn")
        client = manager(cluster).client()
        try:
            create_standin(client, name, replicas, constraints=[PINNED],
                           restart_policy=RestartPolicy(condition="any", delay=5_000_000_000, window=60_000_000_000))
        finally:
            client.close()
        made.append(name)
        converge(cluster, name, replicas)
        return name

    yield make
    restore(cluster)  # a test that failed half-way may have left nodes down
    client = manager(cluster).client()
    try:
        for name in made:
            remove_standin(client, name)
    finally:
        client.close()


def receiver_config(service: str, node: Node, timeout: str = "5s", **policy: Any) -> dict[str, Any]:
    return {
        "services": {service: {"min_replicas": 1, "max_replicas": 8, "scale_up_cooldown": "10m",
                               "scale_down_cooldown": "10m", "convergence_wait": "5m", **policy}},
        "docker": {"host": node.docker_host, "timeout": timeout},
        "reconcile_interval": 0,
    }


@pytest.fixture
def receiver_on(tmp_path: Path) -> Iterator[Callable[..., ReceiverProcess]]:
    """Start a real receiver process whose Docker is the named node's engine."""
    started: list[ReceiverProcess] = []

    def start(node: Node, service: str, **kw: Any) -> ReceiverProcess:
        receiver = ReceiverProcess(tmp_path / f"receiver-{node.name}", receiver_config(service, node, **kw))
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.close()

