"""The watched copy of the swarm on the real engine: decisions read it, a scale is one Docker
call, changes made outside reach it, and it is never trusted when it cannot be."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from receiver.app import SWARM, create_app
from receiver.dockerapi import DockerSwarm, connect
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
    copy = SwarmCopy([name], lambda: connect(docker_host, 20), tasks_interval=0.2)
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


async def test_decisions_read_the_copy_a_scale_down_is_one_call_and_a_scale_up_counts_tasks_first(aiohttp_client, make_service):
    name = make_service(1).name
    app, copy, registry = app_with_copy(name, scale_down_cooldown=0)
    client = await aiohttp_client(app)
    await held(copy, name, replicas=1, running=1)
    body = await (await post_json(client, payload(alert(name, "up")))).json()
    assert body["decisions"][0]["reason"] == "scaled_up"
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="inspect") == 0
    # A scale-up counts the tasks on their way now (not as of the last re-list), then updates.
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="tasks") == 1
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
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="tasks") == 1
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="inspect") == 0


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
