"""The watched copy of the swarm on the real engine: decisions read it, a scale is one Docker
call, changes made outside reach it, and it is never trusted when it cannot be."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from receiver import watch
from receiver.app import SWARM, create_app
from receiver.dockerapi import DockerSwarm
from receiver.state import STATE_LABELS
from receiver.watch import SwarmCopy

from ..conftest import alert, payload, post_json, sample
from ..sockproxy import SocketProxy
from .conftest import docker_cli, spec_of

pytestmark = pytest.mark.swarm


def app_with_copy(name: str, docker_host: str | None = None, **policy):
    from receiver.config import parse_config

    config = parse_config({
        "services": {name: {"min_replicas": 1, "max_replicas": 4, "scale_up_cooldown": "2m", **policy}},
        "docker": {"timeout": "20s"}, "reconcile_interval": 0, "status_cache": 0,
    })
    copy = SwarmCopy([name], docker_host, timeout=20, tasks_interval=0.2)
    registry = CollectorRegistry()
    return create_app(config, DockerSwarm(None, 20), registry=registry, copy=copy), copy, registry


async def held(copy: SwarmCopy, name: str, **expected) -> None:
    """Waits until the copy holds ``name`` with the expected snapshot fields."""
    for _ in range(200):
        snapshot = copy.get(name)
        if snapshot is not None and all(getattr(snapshot, k, None) == v for k, v in expected.items()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the copy never held {name} with {expected}: {copy.get(name)}")


async def test_decisions_read_the_copy_and_a_scale_either_way_is_one_call(aiohttp_client, make_service):
    name = make_service(1).name
    app, copy, registry = app_with_copy(name, scale_down_cooldown=0)
    client = await aiohttp_client(app)
    await held(copy, name, replicas=1, running=1)
    body = await (await post_json(client, payload(alert(name, "up")))).json()
    assert body["decisions"][0]["reason"] == "scaled_up"
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="inspect") == 0
    # The tasks on their way are counted from the copy (listed within tasks_max_age): no read of its own.
    assert sample(registry, "autoscaler_swarm_reads_total", source="docker") == 0
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="update") == 1
    await held(copy, name, replicas=2)  # our own scale comes back through the event stream
    body = await (await post_json(client, payload(alert(name, "up")))).json()
    assert body["decisions"][0]["reason"] == "cooldown"  # read from the copy: our labels are in it
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="inspect") == 0
    assert sample(registry, "autoscaler_swarm_reads_total", source="copy") == 2
    assert sample(registry, "autoscaler_swarm_copy_live") == 1
    body = await (await post_json(client, payload(alert(name, "down", name="OllamaLowCPU")))).json()
    assert body["decisions"][0]["reason"] == "scaled_down"
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="update") == 2  # one call
    assert sample(registry, "autoscaler_swarm_reads_total", source="docker") == 0
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="inspect") == 0


async def test_a_task_lost_outside_holds_a_scale_up_once_the_copys_re_list_counts_it(aiohttp_client, docker_client, make_service):
    name = make_service(2).name
    app, copy, registry = app_with_copy(name, scale_up_cooldown=0)
    client = await aiohttp_client(app)
    await held(copy, name, replicas=2, running=2)
    victim = docker_client.containers.list(filters={"label": f"com.docker.swarm.service.name={name}"})[0]
    victim.kill()  # no service event: only the re-list of tasks (every 0.2 s here) sees it
    for _ in range(200):
        seen = copy.get(name)
        if seen is not None and seen.running == 1 and seen.pending_since is not None:
            break
        await asyncio.sleep(0.05)
    assert seen is not None and seen.running == 1 and seen.pending_since is not None, seen
    body = await (await post_json(client, payload(alert(name, "up")))).json()
    assert body["decisions"][0]["reason"] == "not_converged", body  # its replacement is on its way
    assert sample(registry, "autoscaler_swarm_reads_total", source="copy") == 1
    assert sample(registry, "autoscaler_swarm_reads_total", source="docker") == 0
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="inspect") == 0
    assert spec_of(docker_client, name)["Mode"]["Replicated"]["Replicas"] == 2


async def test_a_copy_whose_tasks_were_not_re_listed_lately_is_not_served(aiohttp_client, make_service, monkeypatch):
    name = make_service(1).name
    app, copy, registry = app_with_copy(name, scale_up_cooldown=0)
    client = await aiohttp_client(app)
    await held(copy, name, replicas=1, running=1)
    stuck = asyncio.Event()
    listing = watch.list_tasks

    async def hanging(engine, service_ids):  # Docker stops answering the copy's task lists (the stream stays up)
        await stuck.wait()
        return await listing(engine, service_ids)

    monkeypatch.setattr(watch, "list_tasks", hanging)
    for _ in range(100):
        if copy.get(name) is None:
            break
        await asyncio.sleep(0.05)
    assert copy.live and copy.get(name) is None  # live, but its tasks are older than tasks_max_age
    body = await (await post_json(client, payload(alert(name, "up")))).json()
    assert body["decisions"][0]["reason"] == "scaled_up"
    assert sample(registry, "autoscaler_swarm_reads_total", source="docker") == 1  # read from Docker instead
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="inspect") == 1
    await held(copy, name, replicas=2)  # our own update's event, re-read after its answer
    await asyncio.sleep(copy.tasks_max_age + 0.2)
    assert copy.get(name) is None  # and aged out again: the re-lister is still stuck
    stuck.set()
    await held(copy, name, replicas=2)  # listed again: served again
    await asyncio.sleep(copy.tasks_max_age + 0.2)
    assert copy.get(name) is not None  # and kept current


async def test_a_change_made_outside_reaches_the_copy(aiohttp_client, make_service):
    name = make_service(1).name
    app, copy, _ = app_with_copy(name)
    await aiohttp_client(app)
    await held(copy, name, replicas=1)
    docker_cli("service", "scale", "--detach", f"{name}=3")
    await held(copy, name, replicas=3)
    docker_cli("service", "update", "--detach", "--label-add", "team=ml", name)
    for _ in range(100):
        if (copy.get(name) or None) is not None and copy.get(name).labels.get("team") == "ml":
            break
        await asyncio.sleep(0.05)
    assert copy.get(name).labels["team"] == "ml"


async def test_while_the_event_stream_is_down_reads_go_to_docker_and_the_copy_catches_up_after(
        aiohttp_client, docker_client, make_service):
    name = make_service(1).name
    proxy = SocketProxy()
    try:
        app, copy, registry = app_with_copy(name, proxy.url)
        client = await aiohttp_client(app)
        await held(copy, name, replicas=1)
        proxy.cut()  # the stream (and only the copy's connection) is gone
        for _ in range(100):
            if not copy.live:
                break
            await asyncio.sleep(0.05)
        assert not copy.live and sample(registry, "autoscaler_swarm_copy_live") == 0
        assert copy.get(name) is None  # nothing is decided from a copy known to be stale
        body = await (await post_json(client, payload(alert(name, "up")))).json()
        assert body["decisions"][0]["reason"] == "scaled_up"  # read from Docker directly
        assert sample(registry, "autoscaler_swarm_reads_total", source="docker") == 1
        docker_cli("service", "scale", "--detach", f"{name}=3")  # changed while the stream is down
        proxy.restore()
        await held(copy, name, replicas=3)  # re-listed on reconnect
        assert sample(registry, "autoscaler_swarm_copy_live") == 1
    finally:
        proxy.close()


async def test_a_copy_that_lags_costs_a_conflict_and_a_re_read_never_a_lost_change(aiohttp_client, docker_client, make_service):
    name = make_service(1).name
    app, copy, registry = app_with_copy(name)
    client = await aiohttp_client(app)
    await held(copy, name, replicas=1)
    copy._store = lambda *args: None  # the stream lags: the copy keeps what it had
    docker_cli("service", "update", "--detach", "--label-add", "added-by-operator=1", name)
    body = await (await post_json(client, payload(alert(name, "up")))).json()
    assert body["decisions"][0]["reason"] == "scaled_up"
    assert sample(registry, "autoscaler_docker_errors_total", operation="update", kind="conflict") == 1
    spec = spec_of(docker_client, name)
    assert spec["Labels"]["added-by-operator"] == "1" and STATE_LABELS["up"] in spec["Labels"]
    assert spec["Mode"]["Replicated"]["Replicas"] == 2
    assert client.app[SWARM].copy is copy


async def test_a_stream_that_stalls_without_closing_serves_no_spec_older_than_a_re_list(aiohttp_client, docker_client, make_service, monkeypatch):
    from receiver.asyncengine import AsyncEventStream

    async def stalled(self):  # connected and silent: nothing tells the copy that the stream is stuck
        await asyncio.Event().wait()

    monkeypatch.setattr(AsyncEventStream, "_next", stalled)
    name = make_service(4).name
    app, copy, registry = app_with_copy(name)
    client = await aiohttp_client(app)
    await held(copy, name, replicas=4)
    docker_cli("service", "scale", "--detach", f"{name}=2")  # no event reaches the copy
    await held(copy, name, replicas=2, running=2)  # read again by the re-list (every 0.2 s here), not at the 30 s resync
    assert copy.live
    body = await (await post_json(client, payload(alert(name, "up")))).json()
    assert (body["decisions"][0]["reason"], body["decisions"][0]["to"]) == ("scaled_up", 3)  # not at_max from 4
    assert sample(registry, "autoscaler_swarm_reads_total", source="docker") == 0
    assert spec_of(docker_client, name)["Mode"]["Replicated"]["Replicas"] == 3


async def test_with_a_stalled_stream_a_service_removed_and_created_again_is_back_within_a_re_list(aiohttp_client, make_service, monkeypatch):
    from receiver.asyncengine import AsyncEventStream
    from receiver.watch import ABSENT

    async def stalled(self):
        await asyncio.Event().wait()

    monkeypatch.setattr(AsyncEventStream, "_next", stalled)
    first = make_service(1)
    app, copy, _ = app_with_copy(first.name)
    await aiohttp_client(app)
    await held(copy, first.name, replicas=1)
    docker_cli("service", "rm", first.name)
    for _ in range(100):  # seen gone by a re-list: no event said so
        if copy.get(first.name) is ABSENT:
            break
        await asyncio.sleep(0.05)
    assert copy.get(first.name) is ABSENT
    again = make_service(2, name=first.name)
    await held(copy, first.name, id=again.id, replicas=2)  # not `service_not_found` until the 30 s resync
