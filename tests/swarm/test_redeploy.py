"""`docker stack deploy` undoes a scale; the receiver restores its last decision (real engine)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
from prometheus_client import CollectorRegistry

from receiver.app import SCALER, create_app
from receiver.config import parse_config
from receiver.dockerapi import DockerSwarm
from receiver.state import STATE_LABELS

from ..conftest import alert, payload, post_json
from .conftest import (
    STANDIN_IMAGE,
    docker_cli,
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


async def test_an_alert_after_a_redeploy_and_before_any_reconcile_restores_first_and_keeps_the_cooldown(
        aiohttp_client, docker_client, stack):
    service, deploy = stack
    client = await aiohttp_client(app_for(service, 0))  # no reconcile at all: only the decision path
    body = await (await post_json(client, payload(alert(service, "up", desired="3")))).json()
    assert body["decisions"][0]["reason"] == "scaled_up"
    wait_converged(docker_client, service, 3)
    await client.app[SCALER].drain()
    deploy()
    assert spec_of(docker_client, service)["Mode"]["Replicated"]["Replicas"] == 1
    body = await (await post_json(client, payload(alert(service, "up")))).json()
    decision = body["decisions"][0]
    assert (decision["reason"], decision["from"], decision["to"]) == ("restored", 1, 3)  # not scaled_up 1 -> 2
    spec = spec_of(docker_client, service)
    assert spec["Mode"]["Replicated"]["Replicas"] == 3 and STATE_LABELS["up"] in spec["Labels"]
    await client.app[SCALER].drain()
    [record] = records_of(docker_client, service)
    assert json.loads(base64.b64decode(record.attrs["Spec"]["Data"]))["replicas"] == 3


async def test_records_go_with_their_service_and_a_service_recreated_under_the_name_is_not_restored(
        aiohttp_client, docker_client, make_service):
    service = make_service(1)
    name = service.name
    client = await aiohttp_client(app_for(name, 0))
    await post_json(client, payload(alert(name, "up", desired="3")))
    await client.app[SCALER].drain()
    assert len(records_of(docker_client, name)) == 1
    service.remove()
    wait_for(lambda: not docker_client.services.list(filters={"name": name}), 30, "the service to go")
    recreated = make_service(1, name=name)  # same name, new ID; its record is still there until a reconcile
    assert recreated.id != service.id
    body = await (await post_json(client, payload(alert(name, "up")))).json()
    assert (body["decisions"][0]["reason"], body["decisions"][0]["to"]) == ("scaled_up", 2)  # not restored to 3
    await client.app[SCALER].drain()
    recreated.remove()
    wait_for(lambda: not docker_client.services.list(filters={"name": name}), 30, "the service to go")
    assert await client.app[SCALER].reconcile() == []
    assert records_of(docker_client, name) == []  # removed with their service, within one reconcile


def test_the_record_of_the_newest_service_version_wins_whatever_the_writers_clocks(docker_client, make_service):
    name = make_service(0).name
    swarm = DockerSwarm(None, 20)
    assert swarm.write_record(name, {"replicas": 3, "labels": {}, "version": 12}, 12)
    assert not swarm.write_record(name, {"replicas": 2, "labels": {}, "version": 11}, 11)  # read earlier, written later
    assert not swarm.write_record(name, {"replicas": 2, "labels": {}, "version": 12}, 12)  # the same version twice
    assert swarm.read_record(name)["replicas"] == 3
    assert swarm.write_record(name, {"replicas": 4, "labels": {}, "version": 13}, 13)
    assert swarm.read_record(name)["replicas"] == 4
    assert len(records_of(docker_client, name)) == 1  # older ones removed


async def test_an_unreadable_record_is_ignored_not_a_docker_error_retried_forever(aiohttp_client, docker_client, make_service):
    name = make_service(1).name
    docker_client.configs.create(name=f"swarm-autoscaler-record-bad-{name}", data=b"not json",
                                 labels={"swarm-autoscaler.record-of": name, "swarm-autoscaler.record-version": "5"})
    client = await aiohttp_client(app_for(name, 0))
    resp = await post_json(client, payload(alert(name, "up")))
    assert resp.status == 200
    assert (await resp.json())["decisions"][0]["reason"] == "scaled_up"
    await client.app[SCALER].drain()
    [record] = records_of(docker_client, name)  # the next save replaced it
    assert json.loads(base64.b64decode(record.attrs["Spec"]["Data"]))["replicas"] == 2
