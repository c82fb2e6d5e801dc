"""`docker stack deploy` undoes a scale; the receiver restores its last decision (real engine)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import pytest
from prometheus_client import CollectorRegistry

from receiver.app import create_app
from receiver.config import parse_config
from receiver.dockerapi import DockerSwarm
from receiver.state import STATE_LABELS

from ..conftest import alert, payload, post_json
from .conftest import (
    STANDIN_IMAGE,
    records_of,
    remove_records,
    spec_of,
    wait_converged,
    wait_for,
)

pytestmark = pytest.mark.swarm

COMPOSE = f"""
version: "3.8"
services:
  app:
    image: {STANDIN_IMAGE}
    command: ["/bin/sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      replicas: 1
      labels:
        team: ml
"""


def docker_cli(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def stack(tmp_path, docker_client):
    name = f"astest{uuid.uuid4().hex[:8]}"
    compose = tmp_path / "stack.yml"
    compose.write_text(COMPOSE)
    service = f"{name}_app"

    def deploy() -> None:
        docker_cli("stack", "deploy", "-c", str(compose), name)

    deploy()
    wait_converged(docker_client, service, 1)
    yield service, deploy
    docker_cli("stack", "rm", name)
    wait_for(lambda: not docker_client.api.containers(all=True, filters={"label": f"com.docker.stack.namespace={name}"}), 60, "stack containers to go")
    wait_for(lambda: not docker_client.networks.list(filters={"label": f"com.docker.stack.namespace={name}"}), 60, "stack network to go")
    remove_records(docker_client, service)


def app_for(service: str, reconcile_interval: float):
    config = parse_config({
        "services": {service: {"min_replicas": 1, "max_replicas": 4, "scale_up_cooldown": "10m"}},
        "docker": {"timeout": "20s"},
        "reconcile_interval": reconcile_interval,
    })
    return create_app(config, DockerSwarm(None, 20), registry=CollectorRegistry())


async def test_a_stack_redeploy_is_undone_by_the_receiver_restoring_its_last_decision(aiohttp_client, docker_client, stack):
    service, deploy = stack
    first = await aiohttp_client(app_for(service, 0))
    body = await (await post_json(first, payload(alert(service, "up", desired="3")))).json()
    assert body["decisions"][0]["reason"] == "scaled_up"
    wait_converged(docker_client, service, 3)
    scaled_labels = spec_of(docker_client, service)["Labels"]
    assert len(records_of(docker_client, service)) == 1
    await first.close()

    deploy()  # what FACTS.md says a redeploy does, seen here on this engine:
    spec = spec_of(docker_client, service)
    assert spec["Mode"]["Replicated"]["Replicas"] == 1
    assert not set(STATE_LABELS.values()) & set(spec["Labels"])
    assert spec["Labels"] == {"team": "ml", "com.docker.stack.image": STANDIN_IMAGE, "com.docker.stack.namespace": service.split("_")[0]}

    # A receiver, new or long running, notices on its next reconcile pass and restores it.
    second = await aiohttp_client(app_for(service, 0.5))
    for _ in range(120):
        if spec_of(docker_client, service)["Mode"]["Replicated"]["Replicas"] == 3:
            break
        await asyncio.sleep(0.25)
    restored = spec_of(docker_client, service)
    assert restored["Mode"]["Replicated"]["Replicas"] == 3
    for label in STATE_LABELS.values():
        assert restored["Labels"].get(label) == scaled_labels.get(label)
    wait_converged(docker_client, service, 3)
    # The restored cooldown is honoured; the record stays single.
    body = await (await post_json(second, payload(alert(service, "up")))).json()
    assert body["decisions"][0]["reason"] == "cooldown"
    assert len(records_of(docker_client, service)) == 1
