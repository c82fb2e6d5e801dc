"""The wake listener (receiver/wake.py) on a fake swarm, with a real HTTP upstream on loopback
standing for the service: held requests, bounds, refusals, two receivers, a stopping receiver.

The same behaviours through real Traefik and a real swarm: tests/stack/test_stack_wake.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from devkit.fakes import FakeService, FakeSwarm
from receiver.asyncswarm import AsyncSwarm
from receiver.config import parse_config
from receiver.domain import DockerUnavailable
from receiver.jobs import Silences
from receiver.metrics import Metrics
from receiver.scaler import Scaler
from receiver.state import PAUSE_LABEL, STATE_LABELS
from receiver.wake import RUNNER_OPTIONS, Waker, wake_app

from .conftest import sample

SERVICE = "ollama_ollama"
HEADER = "X-Autoscaler-Service"


class Upstream:
    """The service behind the waker: its health path answers 200 once ``up`` is set."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.requests: list[tuple[str, str, bytes, dict[str, str]]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/version", self.version)
        app.router.add_route("*", "/{tail:.*}", self.answer)
        return app

    async def version(self, _: web.Request) -> web.Response:
        return web.json_response({"version": "0.9.3"}) if self.up.is_set() else web.Response(status=503)

    async def answer(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, await request.read(), dict(request.headers)))
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for word in ("hello", "world"):  # a streamed answer, as Ollama's
            await response.write(json.dumps({"response": word}).encode() + b"\n")
            if request.query.get("cut") and request.transport is not None:
                request.transport.abort()  # the service dies in the middle of its answer
                return response
        await response.write_eof()
        return response


@pytest.fixture
async def upstream(aiohttp_server) -> tuple[Upstream, str]:
    up = Upstream()
    server = await aiohttp_server(up.app())
    return up, f"http://127.0.0.1:{server.port}"


@pytest.fixture
def swarm() -> FakeSwarm:
    return FakeSwarm(FakeService(SERVICE, replicas=0))


@pytest.fixture
async def make_waker(aiohttp_client, clock, swarm, upstream) -> Any:
    """A receiver's waker on the fake swarm (several share it, as two receivers share a swarm)."""
    made: list[tuple[AsyncSwarm, Waker]] = []

    async def build(**wake: Any) -> tuple[Any, Waker, CollectorRegistry]:
        service = {"min_replicas": 0, "max_replicas": 4, "scale_up_cooldown": "2m", "scale_down_cooldown": "5m",
                   "wake": {"upstream": upstream[1], "max_pending": 10, "wake_timeout": "10s", **wake}}
        config = parse_config({"services": {SERVICE: service}, "reconcile_interval": 0, "body_timeout": "1s",
                               "wake": {"listen": "127.0.0.1:18081", "retry_after": "7s"}})
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        async_swarm = AsyncSwarm(swarm, 2.0, metrics.observe_docker)
        scaler = Scaler(config, async_swarm, metrics, clock)
        waker = Waker(config, scaler, Silences([SERVICE], config.alertmanager.scaling_alerts, metrics), metrics)
        made.append((async_swarm, waker))
        client = await aiohttp_client(wake_app(waker, config.wake.max_body_bytes), server_kwargs=RUNNER_OPTIONS)
        return client, waker, registry

    yield build
    for async_swarm, waker in made:
        await waker.close()
        async_swarm.close()


async def until(condition: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


def ask(client: Any, service: str = SERVICE, agent: str = "ollama-python/0.4", body: bytes = b'{"model": "m"}'):
    return client.post("/api/generate?stream=true", data=body, headers={HEADER: service, "User-Agent": agent})


async def test_a_request_for_a_service_at_zero_is_held_wakes_it_and_is_answered_by_it(make_waker, swarm, upstream):
    client, waker, registry = await make_waker()
    held = asyncio.create_task(ask(client))
    await asyncio.sleep(0.5)
    assert not held.done()  # held while no replica answers
    assert swarm.services[SERVICE].replicas == 1  # woken: 0 -> 1
    assert STATE_LABELS["up"] in swarm.services[SERVICE].labels
    upstream[0].up.set()
    response = await held
    assert response.status == 200
    assert [json.loads(line)["response"] for line in (await response.text()).splitlines()] == ["hello", "world"]
    assert response.headers["X-Autoscaler-Wake"] == "woken"
    timing = response.headers["Server-Timing"]
    assert "decision;" in timing and "task;" in timing and "health;" in timing
    method, path, body, headers = upstream[0].requests[0]
    assert (method, path, body) == ("POST", "/api/generate?stream=true", b'{"model": "m"}')
    assert HEADER not in headers and headers["User-Agent"] == "ollama-python/0.4"
    assert sample(registry, "autoscaler_decisions_total", service=SERVICE, direction="up", reason="woken") == 1
    assert sample(registry, "autoscaler_wake_requests_total", service=SERVICE, result="forwarded") == 1
    assert sample(registry, "autoscaler_wake_seconds_count", service=SERVICE) == 1
    assert swarm.updates == [f"update {SERVICE} 1"]


async def test_beyond_max_pending_requests_get_503_with_retry_after_and_the_held_ones_are_answered(
        make_waker, swarm, upstream):
    client, waker, registry = await make_waker(max_pending=10)
    asks = [asyncio.create_task(ask(client)) for _ in range(30)]
    await until(lambda: sum(1 for t in asks if t.done()) >= 20)
    upstream[0].up.set()
    responses = await asyncio.gather(*asks)
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 10 + [503] * 20
    refused = [r for r in responses if r.status == 503]
    assert all(r.headers["Retry-After"] == "7" for r in refused)
    assert {(await r.json())["reason"] for r in refused} == {"busy"}
    assert swarm.updates == [f"update {SERVICE} 1"]  # one wake for all of them
    assert len(upstream[0].requests) == 10


async def test_a_health_checker_does_not_wake_the_service(make_waker, swarm, upstream):
    client, waker, registry = await make_waker()
    response = await ask(client, agent="kube-probe/1.29")
    assert response.status == 503 and "Retry-After" in response.headers
    body = await response.json()
    assert body["reason"] == "health_checker" and "kube-probe" in body["error"]
    assert swarm.services[SERVICE].replicas == 0 and swarm.updates == []


@pytest.mark.parametrize("held_by", ["pause label", "silence"])
async def test_a_paused_or_frozen_service_is_not_woken_and_the_request_is_told_why(make_waker, swarm, upstream, held_by):
    client, waker, registry = await make_waker()
    if held_by == "pause label":
        swarm.services[SERVICE].labels[PAUSE_LABEL] = "true"
    else:
        waker.silences.update([{"id": "s1", "status": {"state": "active"}, "endsAt": "2026-12-02T09:00:00Z",
                                "comment": "model migration", "createdBy": "ops",
                                "matchers": [{"name": "service", "value": SERVICE, "isRegex": False, "isEqual": True}]}])
    response = await ask(client)
    body = await response.json()
    assert response.status == 503 and body["reason"] == ("paused" if held_by == "pause label" else "frozen")
    assert swarm.services[SERVICE].replicas == 0 and swarm.updates == []


async def test_a_silence_of_scale_downs_only_does_not_stop_a_wake(make_waker, swarm, upstream):
    client, waker, registry = await make_waker()
    waker.silences.update([{"id": "s1", "status": {"state": "active"}, "endsAt": "2026-12-02T09:00:00Z",
                            "matchers": [{"name": "scale", "value": "down", "isRegex": False, "isEqual": True}]}])
    upstream[0].up.set()
    assert (await ask(client)).status == 200 and swarm.services[SERVICE].replicas == 1


async def test_held_requests_get_503_when_the_service_is_not_up_within_wake_timeout(make_waker, swarm, upstream):
    client, waker, registry = await make_waker(wake_timeout="1s")
    response = await ask(client)
    body = await response.json()
    assert response.status == 503 and body["reason"] == "wake_timeout" and "1s" in body["error"]
    assert swarm.services[SERVICE].replicas == 1  # woken; it did not answer in time


async def test_a_stopping_receiver_answers_its_held_requests_at_once(make_waker, swarm, upstream):
    client, waker, registry = await make_waker(wake_timeout="5m")
    held = [asyncio.create_task(ask(client)) for _ in range(3)]
    await until(lambda: waker.pending.get(SERVICE, 0) >= 3)
    waker.stopping()
    responses = await asyncio.wait_for(asyncio.gather(*held), 5)
    assert [r.status for r in responses] == [503] * 3
    assert {(await r.json())["reason"] for r in responses} == {"stopping"}
    assert (await ask(client)).status == 503  # and takes no new one


async def test_two_receivers_waking_one_service_make_one_scale(make_waker, swarm, upstream):
    first, _, _ = await make_waker()
    second, _, _ = await make_waker()
    asks = [asyncio.create_task(ask(c)) for c in (first, second) * 5]
    await asyncio.sleep(0.5)
    upstream[0].up.set()
    assert [r.status for r in await asyncio.gather(*asks)] == [200] * 10
    assert swarm.services[SERVICE].replicas == 1
    # One write: the other receiver's update, if it raced, was refused by the version check and
    # re-read found the service awake.
    assert swarm.services[SERVICE].version == 2


async def test_a_transient_docker_failure_is_retried_within_the_wake(make_waker, swarm, upstream):
    client, waker, registry = await make_waker()
    swarm.failures = [DockerUnavailable("engine restarting")]
    upstream[0].up.set()
    response = await ask(client)
    assert response.status == 200 and swarm.services[SERVICE].replicas == 1


async def test_a_request_for_an_awake_service_is_forwarded_without_a_scale(make_waker, swarm, upstream):
    client, waker, registry = await make_waker()
    swarm.services[SERVICE].replicas = 2  # up, and Traefik has not seen it yet
    upstream[0].up.set()
    response = await ask(client)
    assert response.status == 200 and response.headers["X-Autoscaler-Wake"] == "at_target"
    assert swarm.updates == []


@pytest.mark.parametrize("header", ["", "other_service"])
async def test_a_request_naming_no_wakeable_service_is_a_502_naming_the_header(make_waker, swarm, upstream, header):
    client, waker, registry = await make_waker()
    response = await ask(client, service=header)
    body = await response.json()
    assert response.status == 502 and body["field"] == HEADER
    assert swarm.updates == []


async def test_a_client_that_leaves_while_held_frees_its_slot_and_is_not_passed_on(make_waker, swarm, upstream):
    client, waker, registry = await make_waker()
    held = asyncio.create_task(ask(client))
    await until(lambda: waker.pending.get(SERVICE, 0) == 1)
    held.cancel()  # the client gives up: its connection closes
    await until(lambda: waker.pending.get(SERVICE, 0) == 0)
    upstream[0].up.set()
    await asyncio.sleep(1)
    assert upstream[0].requests == []  # nobody asked Ollama for a generation nobody reads


async def test_a_body_that_does_not_come_gets_408_frees_its_slot_and_the_wake_goes_on(make_waker, swarm, upstream):
    client, waker, registry = await make_waker()

    async def never_ends():
        yield b'{"model": '
        await asyncio.sleep(60)

    slow = await client.post("/api/generate", data=never_ends(), headers={HEADER: SERVICE})
    assert slow.status == 408 and (await slow.json())["reason"] == "slow_body"
    assert waker.pending.get(SERVICE, 0) == 0
    assert swarm.services[SERVICE].replicas == 1  # woken from the headers, the body did not matter


async def test_a_request_joining_a_wake_late_keeps_its_own_wake_timeout(make_waker, swarm, upstream):
    client, waker, registry = await make_waker(wake_timeout="2s")
    first = asyncio.create_task(ask(client))
    await asyncio.sleep(1.5)
    late = asyncio.create_task(ask(client))
    assert (await first).status == 503  # the first one's 2 s are over
    upstream[0].up.set()  # up at 2 s: inside the late one's 2 s
    response = await late
    assert response.status == 200, await response.text()


async def test_an_answer_cut_by_the_service_reaches_the_client_broken_not_complete(make_waker, swarm, upstream):
    client, waker, registry = await make_waker()
    upstream[0].up.set()
    response = await client.post("/api/generate?cut=1", data=b"{}", headers={HEADER: SERVICE})
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    assert sample(registry, "autoscaler_wake_requests_total", service=SERVICE, result="upstream_cut") == 1


async def test_with_alertmanager_never_read_a_wake_is_refused_as_it_may_be_frozen(make_waker, swarm, upstream):
    client, waker, registry = await make_waker()
    waker.silences.job("http://127.0.0.1:9", 30, 1)  # configured; its poll never answered
    response = await ask(client)
    assert response.status == 503 and (await response.json())["reason"] == "silences_unknown"
    assert swarm.updates == []
