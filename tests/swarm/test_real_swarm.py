"""The receiver against the real Docker Engine in swarm mode: every Docker behaviour it relies on."""

from __future__ import annotations

import asyncio
import copy
import time

import pytest
from docker.types import RestartPolicy, UpdateConfig
from prometheus_client import CollectorRegistry

from receiver.app import create_app
from receiver.config import parse_config
from receiver.dockerapi import DockerSwarm
from receiver.domain import ServiceNotFound, UpdateConflict
from receiver.state import STATE_LABELS

from ..conftest import alert, payload, post_json
from ..processes import ReceiverProcess
from .conftest import STANDIN_IMAGE, docker_cli, spec_of, wait_converged, wait_for

pytestmark = pytest.mark.swarm


def config_for(*names: str, **policy):
    service = {"min_replicas": 1, "max_replicas": 4, "scale_up_cooldown": "2m", "scale_down_cooldown": "5m", **policy}
    return parse_config({"services": {n: dict(service) for n in names}, "docker": {"timeout": "20s"}})


async def real_client(aiohttp_client, config, swarm=None):
    app = create_app(config, swarm or DockerSwarm(None, 20), registry=CollectorRegistry())
    return await aiohttp_client(app)


def without_state(spec: dict) -> dict:
    spec = copy.deepcopy(spec)
    spec["Mode"]["Replicated"].pop("Replicas")
    for label in STATE_LABELS.values():
        spec.get("Labels", {}).pop(label, None)
    return spec


async def test_scaling_up_and_down_moves_real_replicas_and_keeps_the_rest_of_the_spec(aiohttp_client, docker_client, make_service):
    service = make_service(1, rich=True)
    before = spec_of(docker_client, service.name)
    client = await real_client(aiohttp_client, config_for(service.name, scale_up_cooldown=0, scale_down_cooldown=0))

    resp = await post_json(client, payload(alert(service.name, "up")))
    assert (await resp.json())["decisions"][0]["reason"] == "scaled_up"
    wait_converged(docker_client, service.name, 2)
    after_up = spec_of(docker_client, service.name)
    assert STATE_LABELS["up"] in after_up["Labels"]
    assert without_state(after_up) == without_state(before)

    resp = await post_json(client, payload(alert(service.name, "down")))
    assert (await resp.json())["decisions"][0]["reason"] == "scaled_down"
    wait_converged(docker_client, service.name, 1)
    after_down = spec_of(docker_client, service.name)
    assert STATE_LABELS["down"] in after_down["Labels"]
    assert without_state(after_down) == without_state(before)
    # Labels, env, constraints, mounts and networks are all still there, not just "equal".
    assert after_down["Labels"]["team"] == "ml"
    assert after_down["TaskTemplate"]["ContainerSpec"]["Env"] == ["MODEL=llama3", "OLLAMA_KEEP_ALIVE=5m"]
    assert after_down["TaskTemplate"]["Placement"]["Constraints"] == ["node.role==manager"]


async def test_desired_replicas_above_max_lands_on_max(aiohttp_client, docker_client, make_service):
    service = make_service(1)
    client = await real_client(aiohttp_client, config_for(service.name))
    body = await (await post_json(client, payload(alert(service.name, "up", desired="99")))).json()
    assert body["decisions"][0] == {"service": service.name, "direction": "up", "from": 1, "to": 4, "reason": "clamped_to_max", "details": {"wanted": 99}}
    wait_converged(docker_client, service.name, 4)


async def test_a_change_made_between_our_read_and_our_write_survives(aiohttp_client, docker_client, make_service):
    service = make_service(1)

    class OperatorInTheMiddle(DockerSwarm):
        interfered = False

        def set_replicas(self, snapshot, replicas, labels):
            if not self.interfered:  # an operator's `docker service update --label-add` lands first
                self.interfered = True
                docker_cli("service", "update", "--detach", "--label-add", "added-by-operator=1", snapshot.id)
            return super().set_replicas(snapshot, replicas, labels)

    # (A label change starts no rolling update; a change that does, such as --env-add, holds
    # scaling with update_in_progress until it ends: test_the_receiver_does_not_scale_a_service_in_a_rolling_update.)
    swarm = OperatorInTheMiddle(None, 20)
    client = await real_client(aiohttp_client, config_for(service.name), swarm)
    body = await (await post_json(client, payload(alert(service.name, "up")))).json()
    assert body["decisions"][0]["reason"] == "scaled_up"
    assert swarm.interfered
    spec = spec_of(docker_client, service.name)
    assert spec["Labels"]["added-by-operator"] == "1"  # re-read after the conflict, kept
    assert STATE_LABELS["up"] in spec["Labels"]
    assert spec["Mode"]["Replicated"]["Replicas"] == 2


def test_a_stale_version_is_refused_by_the_engine_as_update_out_of_sequence(docker_client, make_service):
    service = make_service(1)
    swarm = DockerSwarm(None, 20)
    stale = swarm.inspect(service.name)
    docker_client.services.get(service.name).update(labels={"changed": "yes"})
    with pytest.raises(UpdateConflict):
        swarm.set_replicas(stale, 3, {})
    spec = spec_of(docker_client, service.name)
    assert spec["Mode"]["Replicated"]["Replicas"] == 1
    assert spec["Labels"] == {"changed": "yes"}


def test_only_an_exact_service_name_is_found(docker_client, make_service):
    service = make_service(1, converge=False)
    swarm = DockerSwarm(None, 20)
    assert swarm.inspect(service.name).id == service.id
    with pytest.raises(ServiceNotFound):
        swarm.inspect(service.id[:12])  # the engine would match an ID prefix
    with pytest.raises(ServiceNotFound):
        swarm.inspect(service.name + "-nope")


async def test_global_and_unconfigured_services_are_refused_and_left_alone(aiohttp_client, docker_client, make_service):
    global_service = make_service(mode="global")
    other = make_service(1)
    versions = {s.name: docker_client.services.get(s.name).version for s in (global_service, other)}
    client = await real_client(aiohttp_client, config_for(global_service.name))
    body = await (await post_json(client, payload(alert(global_service.name, "up"), alert(other.name, "up")))).json()
    reasons = {d["service"]: d["reason"] for d in body["decisions"]}
    assert reasons == {global_service.name: "global_mode", other.name: "unconfigured_service"}
    assert {s: docker_client.services.get(s).version for s in versions} == versions


async def test_scale_up_waits_while_tasks_cannot_start(aiohttp_client, docker_client, make_service):
    # A constraint no node satisfies: the task stays pending, as a replica pulling its image would.
    service = make_service(1, converge=False, constraints=["node.labels.astest_nowhere==true"])
    wait_for(lambda: len(service.tasks()) == 1, 30, "the pending task")
    client = await real_client(aiohttp_client, config_for(service.name))
    body = await (await post_json(client, payload(alert(service.name, "up")))).json()
    decision = body["decisions"][0]
    assert decision["reason"] == "not_converged"
    assert decision["details"]["running"] == 0
    assert spec_of(docker_client, service.name)["Mode"]["Replicated"]["Replicas"] == 1


async def test_ready_and_status_against_the_real_engine(aiohttp_client, docker_client, make_service):
    service = make_service(2)
    client = await real_client(aiohttp_client, config_for(service.name))
    assert (await client.get("/-/ready")).status == 200
    [entry] = (await (await client.get("/status")).json())["services"]
    assert (entry["replicas_desired"], entry["replicas_running"]) == (2, 2)


# --- a real restart: the cooldown lives on the service, not in the process ------------------------

def test_the_cooldown_holds_after_the_receiver_is_restarted(tmp_path, docker_client, make_service):
    service = make_service(1)
    config = {"services": {service.name: {"min_replicas": 1, "max_replicas": 4, "scale_up_cooldown": "10m"}}}
    with ReceiverProcess(tmp_path, config) as first:
        status, body = first.post(payload(alert(service.name, "up")))
        assert (status, body["decisions"][0]["reason"]) == (200, "scaled_up")
    assert '"reason": "scaled_up"' in first.log_path.read_text()  # the JSON decision line
    with ReceiverProcess(tmp_path, config) as second:
        status, body = second.post(payload(alert(service.name, "up")))
    decision = body["decisions"][0]
    assert decision["reason"] == "cooldown"
    assert 0 < decision["details"]["cooldown_remaining"] <= 600
    assert spec_of(docker_client, service.name)["Mode"]["Replicated"]["Replicas"] == 2


async def test_a_replacement_task_waiting_out_its_restart_delay_holds_a_scale_up(aiohttp_client, docker_client, make_service):
    # A failed task's replacement waits with desired state "ready" (not "running") for the
    # restart delay: it is on its way, so a scale-up waits for it.
    from docker.types import RestartPolicy

    service = make_service(2, restart_policy=RestartPolicy(condition="any", delay=20_000_000_000))
    [victim] = [t for t in service.tasks(filters={"desired-state": "running"})][:1]
    docker_client.api.kill(victim["Status"]["ContainerStatus"]["ContainerID"])
    wait_for(lambda: any(t["DesiredState"] == "ready" for t in service.tasks()), 30, "the replacement task")
    client = await real_client(aiohttp_client, config_for(service.name))
    body = await (await post_json(client, payload(alert(service.name, "up")))).json()
    decision = body["decisions"][0]
    assert decision["reason"] == "not_converged", decision
    assert decision["details"]["running"] == 1
    assert spec_of(docker_client, service.name)["Mode"]["Replicated"]["Replicas"] == 2


ROLLBACK_TAG = "autoscaler-standin:rollback-test"


@pytest.fixture
def updating_service(docker_client, make_service):
    """A 2-replica service in the middle of a slow rolling update to another image tag."""
    docker_client.images.get(STANDIN_IMAGE).tag(ROLLBACK_TAG)
    service = make_service(2, update_config=UpdateConfig(parallelism=1, delay=60_000_000_000))
    docker_cli("service", "update", "--detach", "--image", ROLLBACK_TAG, service.name)
    wait_for(lambda: (docker_client.api.inspect_service(service.id).get("UpdateStatus") or {}).get("State") == "updating",
             30, "the rolling update to start")
    yield service
    docker_client.images.remove(ROLLBACK_TAG)


def test_a_scale_during_a_rolling_update_would_make_rollback_keep_the_new_image(docker_client, updating_service):
    # Why the receiver holds scaling during an update: what the engine does when something scales anyway.
    swarm = DockerSwarm(None, 20)
    snapshot = swarm.inspect(updating_service.name)
    assert snapshot.updating
    swarm.set_replicas(snapshot, 3, {})
    docker_cli("service", "rollback", "--detach", updating_service.name)
    spec = spec_of(docker_client, updating_service.name)
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == ROLLBACK_TAG  # not back to the old image
    assert spec["Mode"]["Replicated"]["Replicas"] == 2  # "rolled back" only the scale


async def test_the_receiver_does_not_scale_a_service_in_a_rolling_update(aiohttp_client, docker_client, updating_service):
    name = updating_service.name
    client = await real_client(aiohttp_client, config_for(name))
    version = docker_client.api.inspect_service(name)["Version"]["Index"]
    body = await (await post_json(client, payload(alert(name, "up")))).json()
    assert body["decisions"][0]["reason"] == "update_in_progress"
    assert docker_client.api.inspect_service(name)["Version"]["Index"] == version


async def test_a_crash_looping_task_holds_scale_ups_for_one_convergence_wait_not_forever(aiohttp_client, make_service):
    # Every failed task is replaced by a newer one: the oldest pending task is always a few seconds old.
    service = make_service(1, converge=False, command=["/bin/sh", "-c", "exit 1"],
                           restart_policy=RestartPolicy(condition="any", delay=3_000_000_000))
    client = await real_client(aiohttp_client, config_for(service.name, convergence_wait="8s"))
    started, reasons = time.monotonic(), []
    while time.monotonic() - started < 40:
        reason = (await (await post_json(client, payload(alert(service.name, "up")))).json())["decisions"][0]["reason"]
        reasons.append((round(time.monotonic() - started, 1), reason))
        if reason != "not_converged":
            break
        await asyncio.sleep(1)
    # Not before one convergence_wait from the first read that found it short; and not never
    # (each failed task is replaced every 3 s: timed from the newest, the wait never ends).
    assert reasons[-1][1] == "scaled_up", reasons
    assert reasons[-1][0] >= 8, reasons
