"""The receiver through the docker gate on the real engine: the legitimate path works as it does
on the socket, and what the gate refuses leaves the engine untouched."""

from __future__ import annotations

import asyncio

import docker
import pytest

from devkit.receiverproc import GateProcess
from receiver.dockerapi import DockerSwarm
from receiver.domain import ServiceNotFound
from receiver.state import STATE_LABELS
from receiver.watch import SwarmCopy

from ..conftest import alert, payload, report
from ..processes import ReceiverProcess, post_many, reasons
from .conftest import docker_cli, records_of, spec_of, wait_converged
from .test_real_swarm import without_state

pytestmark = pytest.mark.swarm


def config_for(*names: str, docker_host: str | None = None, **policy) -> dict:
    service = {"min_replicas": 1, "max_replicas": 4, "scale_up_cooldown": "10m", "scale_down_cooldown": "10m", **policy}
    docker = {"timeout": "20s", **({"host": docker_host} if docker_host else {})}
    return {"services": {n: dict(service) for n in names}, "docker": docker, "reconcile_interval": 0}


def test_a_webhook_scales_through_the_gate_keeps_the_rest_of_the_spec_and_writes_the_record(tmp_path, docker_client, make_service):
    service = make_service(1, rich=True)
    before = spec_of(docker_client, service.name)
    with GateProcess(tmp_path / "gate", config_for(service.name)) as gate, \
            ReceiverProcess(tmp_path / "receiver", config_for(service.name, docker_host=gate.docker_host)) as receiver:
        status, body = receiver.post(payload(alert(service.name, "up")))
        assert (status, body["decisions"][0]["reason"]) == (200, "scaled_up")
        wait_converged(docker_client, service.name, 2)
        after = spec_of(docker_client, service.name)
        assert STATE_LABELS["up"] in after["Labels"]
        assert without_state(after) == without_state(before)
        receiver.stop()  # the record is written after the answer: let it finish
        assert len(records_of(docker_client, service.name)) == 1


async def test_two_receivers_each_behind_its_own_gate_make_exactly_one_step(tmp_path, docker_client, make_service):
    service = make_service(1)
    with GateProcess(tmp_path / "g1", config_for(service.name)) as g1, GateProcess(tmp_path / "g2", config_for(service.name)) as g2, \
            ReceiverProcess(tmp_path / "a", config_for(service.name, docker_host=g1.docker_host)) as a, \
            ReceiverProcess(tmp_path / "b", config_for(service.name, docker_host=g2.docker_host)) as b:
        answers = await post_many([a, b], payload(alert(service.name, "up")), 50)
        logs = a.stop() + b.stop()
    counts = reasons(answers)
    assert counts == {"scaled_up": 1, "cooldown": 99}
    assert spec_of(docker_client, service.name)["Mode"]["Replicated"]["Replicas"] == 2
    report(f"two receivers, each through its own docker gate: 2 x 50 concurrent notifications -> {counts}, "
           f"{logs.count('update_conflict')} version conflicts re-read, replicas 1 -> 2")


def test_an_operators_change_between_read_and_write_survives_through_the_gate(tmp_path, docker_client, make_service):
    service = make_service(1)
    with GateProcess(tmp_path, config_for(service.name)) as gate:
        swarm = DockerSwarm(gate.docker_host, 20)
        snapshot = swarm.inspect(service.name)
        docker_client.services.get(service.name).update(env=["OPERATOR=1"])  # lands first
        with pytest.raises(Exception, match="update out of sequence"):
            swarm.set_replicas(snapshot, 2, {})
        swarm.set_replicas(swarm.inspect(service.name), 2, {})
    spec = spec_of(docker_client, service.name)
    assert spec["Mode"]["Replicated"]["Replicas"] == 2
    assert spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["OPERATOR=1"]


def test_a_configured_name_that_is_only_another_services_id_prefix_is_not_found(tmp_path, make_service):
    other = make_service(1)
    prefix = other.id[:10]  # the engine's inspect matches ID prefixes
    with GateProcess(tmp_path, config_for(prefix)) as gate:
        with pytest.raises(ServiceNotFound):
            DockerSwarm(gate.docker_host, 20).inspect(prefix)


def test_with_docker_unreachable_the_receiver_answers_503_so_alertmanager_retries(tmp_path, docker_client, make_service):
    service = make_service(1)
    with GateProcess(tmp_path / "gate", config_for(service.name), docker=f"unix://{tmp_path}/none.sock",
                     wait_ready=False) as gate, \
            ReceiverProcess(tmp_path / "r", config_for(service.name, docker_host=gate.docker_host), wait_ready=False) as receiver:
        status, body = receiver.post(payload(alert(service.name, "up")))
        assert receiver.status_of("/-/ready") == 503
    assert status == 503 and body["decisions"][0]["reason"] == "docker_error", body  # the gate's words are logged
    assert spec_of(docker_client, service.name)["Mode"]["Replicated"]["Replicas"] == 1


def test_the_gate_passes_service_events_of_configured_services_only_and_the_copy_follows_through_it(
        tmp_path, docker_client, make_service):
    mine, other, also_mine = make_service(1), make_service(1), make_service(1)
    with GateProcess(tmp_path / "gate", config_for(mine.name, also_mine.name)) as gate:
        api = docker.APIClient(base_url=gate.docker_host, version="auto", timeout=20)
        stream = api.events(filters={"type": ["service"]}, decode=True)
        docker_cli("service", "update", "--detach", "--label-add", "seen=other", other.name)
        docker_cli("service", "update", "--detach", "--label-add", "seen=mine", mine.name)
        event = next(iter(stream))
        stream.close()
        assert event["Actor"]["Attributes"]["name"] == mine.name  # the other service's event never came
        refused = api._get(api._url("/events"), params={"filters": '{"type": ["container"]}'}, stream=True)
        assert refused.status_code == 403 and "service events" in refused.json()["message"]
        api.close()
        asyncio.run(follow_through(gate.docker_host, mine.name, also_mine.name))


async def follow_through(docker_host: str, name: str, also: str) -> None:
    """The copy, following the gate, holds ``name`` and then sees it scaled outside; the tasks of
    both its services are re-listed through the gate, so neither ages out."""
    copy = SwarmCopy([name, also], docker_host, timeout=20, tasks_interval=0.2)
    copy.start()
    try:
        await until(lambda: copy.live and copy.get(name) is not None, 20, "the copy to follow through the gate")
        await asyncio.to_thread(docker_cli, "service", "scale", "--detach", f"{name}=2")
        await until(lambda: getattr(copy.get(name), "replicas", None) == 2, 20, "the copy to see the scale")
        await asyncio.sleep(copy.tasks_max_age + 0.5)  # longer than any entry lives without a re-list
        assert copy.get(name) is not None and copy.get(also) is not None
    finally:
        await copy.stop()


async def until(condition, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
