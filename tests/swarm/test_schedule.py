"""A scheduled minimum on the real engine, with the receiver's clock injected (no real hours
waited): replicas are raised ``lead`` before the window starts, held at its minimum during it,
and scale-down alerts take them down again after it."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from receiver.app import create_app
from receiver.config import parse_config
from receiver.dockerapi import DockerSwarm
from receiver.state import STATE_LABELS, encode_time

from ..conftest import Clock, alert, payload, post_json, sample
from ..test_schedule import at
from .conftest import spec_of, wait_converged

pytestmark = pytest.mark.swarm

WINDOW = {"name": "morning", "min_replicas": 3, "lead": "15m",
          "time_intervals": [{"weekdays": ["monday"], "times": [{"start_time": "08:00", "end_time": "09:00"}]}]}


def replicas_of(client, name: str) -> int:
    return spec_of(client, name)["Mode"]["Replicated"]["Replicas"]


async def test_a_window_raises_replicas_lead_before_it_starts_and_lets_them_fall_after_it(
        aiohttp_client, docker_client, make_service):
    service = make_service(1)
    config = parse_config({
        "services": {service.name: {"min_replicas": 1, "max_replicas": 4, "scale_up_cooldown": "2m",
                                    "scale_down_cooldown": 0, "schedules": [WINDOW]}},
        "docker": {"timeout": "20s", "watch": False}, "reconcile_interval": 0, "schedule_interval": 0.2,
    })
    clock = Clock(at("2026-12-07 07:44:00"))  # a Monday, a minute before the window's lead
    registry = CollectorRegistry()
    client = await aiohttp_client(create_app(config, DockerSwarm(None, 20), registry=registry, clock=clock))

    def raises() -> float:
        return sample(registry, "autoscaler_decisions_total", service=service.name, direction="up",
                      reason="scheduled_minimum")

    await asyncio.sleep(1.5)  # some sweeps
    assert sample(registry, "autoscaler_min_replicas", service=service.name) == 1
    assert replicas_of(docker_client, service.name) == 1 and raises() == 0, "before the lead: untouched"

    clock.now = at("2026-12-07 07:45:00")  # the window starts in 15 minutes: its lead
    await asyncio.to_thread(wait_converged, docker_client, service.name, 3)
    labels = spec_of(docker_client, service.name)["Labels"]
    assert labels[STATE_LABELS["up"]] == encode_time(clock.now), "written as a scale-up, with its time"
    assert raises() == 1

    clock.now = at("2026-12-07 08:30:00")  # in the window, a scale-down alert stops at its minimum
    answer = await (await post_json(client, payload(alert(service.name, "down")))).json()
    assert (answer["decisions"][0]["reason"], answer["decisions"][0]["to"]) == ("at_min", 3)

    clock.now = at("2026-12-07 09:00:00")  # over: the minimum is 1 again and the alerts bring it down
    for expected in (2, 1):
        answer = await (await post_json(client, payload(alert(service.name, "down")))).json()
        assert (answer["decisions"][0]["reason"], answer["decisions"][0]["to"]) == ("scaled_down", expected)
        clock.advance(1)
    await asyncio.to_thread(wait_converged, docker_client, service.name, 1)
    await asyncio.sleep(1.0)  # some sweeps after the window
    assert replicas_of(docker_client, service.name) == 1 and raises() == 1, "nothing raises it after the window"
    assert sample(registry, "autoscaler_min_replicas", service=service.name) == 1
    await client.close()
