"""Fixtures on the real Docker Engine in swarm mode (scripts/setup.sh starts it and builds the
stand-in image). Every service and network a test creates is named uniquely and removed."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from docker.types import EndpointSpec, Mount

from devkit.standin import (
    STANDIN_IMAGE,
    create_standin,
    records_of,
    remove_records,
    remove_standin,
    unique,
)
from devkit.waiting import wait_for

__all__ = ["STANDIN_IMAGE", "docker_cli", "records_of", "remove_records", "spec_of", "unique", "wait_converged", "wait_for"]


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=30)
    info = client.info()
    assert info["Swarm"]["LocalNodeState"] == "active", "run scripts/setup.sh: the engine is not in swarm mode"
    assert info["Swarm"]["ControlAvailable"], "this engine is not a swarm manager"
    client.images.get(STANDIN_IMAGE)  # fails loudly when setup did not build it
    yield client
    client.close()


def running_tasks(service) -> int:
    return sum(1 for t in service.tasks(filters={"desired-state": "running"}) if t["Status"]["State"] == "running")


def wait_converged(client: docker.DockerClient, name: str, replicas: int, timeout: float = 60) -> None:
    def done() -> bool:
        svc = client.services.get(name)
        return svc.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == replicas and running_tasks(svc) == replicas

    wait_for(done, timeout, f"{name} to run {replicas} tasks")


@pytest.fixture
def make_service(docker_client: docker.DockerClient) -> Iterator[Callable[..., Any]]:
    """Create a stand-in service (rich spec: env, labels, constraints, mounts, network, port)."""
    created: list[Any] = []
    networks: list[Any] = []

    def make(replicas: int = 1, *, mode: str = "replicated", rich: bool = False, converge: bool = True, **kw: Any):
        name = kw.pop("name", None) or unique()
        args: dict[str, Any] = {}
        if rich:
            net = docker_client.networks.create(unique("net"), driver="overlay", attachable=True)
            networks.append(net)
            args.update(
                env=["MODEL=llama3", "OLLAMA_KEEP_ALIVE=5m"],
                labels={"team": "ml", "com.example.owner": "ops"},
                container_labels={"role": "llm"},
                constraints=["node.role==manager"],
                mounts=[Mount(target="/data", source="", type="tmpfs")],
                networks=[net.id],
                endpoint_spec=EndpointSpec(ports={}),
            )
        args.update(kw)
        service = create_standin(docker_client, name, replicas, mode=mode, **args)
        created.append(service)
        if converge and mode == "replicated":
            wait_converged(docker_client, name, replicas)
        return service

    yield make
    for service in created:
        remove_standin(docker_client, service.name)
    for service in created:  # tasks must be gone before their network can be removed
        wait_for(lambda s=service: not docker_client.api.containers(all=True, filters={"label": f"com.docker.swarm.service.id={s.id}"}), 60, "containers to go")
    for net in networks:
        for _ in range(30):
            try:
                net.remove()
                break
            except docker.errors.APIError:
                time.sleep(0.5)


def docker_cli(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def spec_of(client: docker.DockerClient, name: str) -> dict[str, Any]:
    return client.services.get(name).attrs["Spec"]
