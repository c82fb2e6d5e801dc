"""Wake on request against the real engine: two receivers, each with its own wake listener,
woken by requests arriving together at both, make one scale (the engine's version check), and
every held request is answered once the task runs. The service's answer comes from a local
server standing for Ollama (the task itself is the stand-in image, reached by nobody)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from devkit.waiting import free_port
from receiver.app import create_app
from receiver.config import parse_config
from receiver.dockerapi import DockerSwarm

from ..conftest import sample
from .conftest import running_tasks, spec_of

pytestmark = pytest.mark.swarm


async def test_two_receivers_woken_together_make_one_scale_and_answer_every_held_request(
        aiohttp_client, aiohttp_server, docker_client, make_service):
    service = make_service(0)

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    upstream = web.Application()
    upstream.router.add_route("*", "/{tail:.*}", answer)
    server = await aiohttp_server(upstream)
    receivers = []
    for _ in range(2):
        port = free_port()
        config = parse_config({
            "services": {service.name: {"min_replicas": 0, "max_replicas": 3, "scale_up_cooldown": "1h",
                                        "wake": {"upstream": f"http://127.0.0.1:{server.port}", "wake_timeout": "60s"}}},
            "docker": {"timeout": "20s", "watch": False}, "reconcile_interval": 0,
            "wake": {"listen": f"127.0.0.1:{port}"},
        })
        registry = CollectorRegistry()
        await aiohttp_client(create_app(config, DockerSwarm(None, 20), registry=registry))  # starts its listener
        receivers.append((port, registry))

    async with aiohttp.ClientSession() as session:
        async def ask(port: int) -> tuple[int, dict[str, str]]:
            async with session.post(f"http://127.0.0.1:{port}/api/generate", data=b"{}",
                                    headers={"X-Autoscaler-Service": service.name}) as response:
                return response.status, await response.json()

        answers = await asyncio.gather(*(ask(port) for port, _ in receivers * 5))
    assert answers == [(200, {"path": "/api/generate"})] * 10
    assert spec_of(docker_client, service.name)["Mode"]["Replicated"]["Replicas"] == 1
    assert running_tasks(docker_client.services.get(service.name)) == 1
    woken = [sample(r, "autoscaler_decisions_total", service=service.name, direction="up", reason="woken")
             for _, r in receivers]
    assert sum(woken) == 1, woken  # one scale; the other receiver found it awake
