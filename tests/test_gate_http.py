"""The docker gate over HTTP, in front of a fake engine that records every call it gets: the
receiver's own adapter works through it unchanged, and bad input never reaches the engine."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from receiver.dockerapi import DockerSwarm
from receiver.domain import ServiceNotFound, SwarmError, UpdateConflict
from receiver.gate.scope import Bounds, Scope
from receiver.gate.server import Limits, create_gate_app
from receiver.gate.upstream import Upstream
from receiver.record_store import RECORD_LABEL
from receiver.state import STATE_LABELS

SCOPE = Scope({"ollama_ollama": Bounds(1, 4)})
OLLAMA_ID = "a" * 25
OTHER_ID = "ollamab" + "b" * 18  # an ID that "ollama" and "ollamab" are prefixes of


class FakeEngine:
    """The part of the Engine API the gate uses, in memory; ``calls`` lists (method, path)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.services = {
            OLLAMA_ID: {"ID": OLLAMA_ID, "Version": {"Index": 10}, "Spec": {
                "Name": "ollama_ollama", "Labels": {"keep": "me"}, "Mode": {"Replicated": {"Replicas": 1}},
                "TaskTemplate": {"ContainerSpec": {"Image": "ollama/ollama"}}}},
            OTHER_ID: {"ID": OTHER_ID, "Version": {"Index": 3}, "Spec": {
                "Name": "prometheus", "Mode": {"Replicated": {"Replicas": 1}}, "TaskTemplate": {}}},
        }
        self.configs: dict[str, dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []
        self.fail_with: int | None = None

    def find(self, ref: str) -> dict[str, Any] | None:
        for by in (lambda s: s["ID"] == ref, lambda s: s["Spec"]["Name"] == ref, lambda s: s["ID"].startswith(ref)):
            found = [s for s in self.services.values() if by(s)]
            if found:
                return found[0]
        return None

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((request.method, request.path))
        if self.fail_with:
            return web.json_response({"message": "engine trouble"}, status=self.fail_with)
        path = request.path.removeprefix("/v1.41")
        filters = json.loads(request.query.get("filters", "{}"))
        parts = path.strip("/").split("/")
        if path == "/version":
            return web.json_response({"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10", "Os": "linux"})
        if path == "/info":
            return web.json_response({"Name": "host", "Swarm": {"NodeID": "n1", "NodeAddr": "10.0.0.1",
                                                                "LocalNodeState": "active", "ControlAvailable": True}})
        if path == "/services":
            return web.json_response([s for s in self.services.values()
                                      if any(s["Spec"]["Name"].startswith(n) for n in filters.get("name", []))])
        if parts[0] == "services":
            service = self.find(parts[1])
            if service is None:
                return web.json_response({"message": "not found"}, status=404)
            if len(parts) == 2:
                return web.json_response(service)
            if request.query.get("version") != str(service["Version"]["Index"]):
                return web.json_response({"message": "rpc error: update out of sequence"}, status=500)
            self.updates.append(await request.json())
            service["Spec"] = self.updates[-1]
            service["Version"]["Index"] += 1
            return web.json_response({"Warnings": None})
        if path == "/tasks":
            return web.json_response([{"ID": "t1", "ServiceID": filters["service"][0], "DesiredState": "running",
                                       "Status": {"State": "running"}, "CreatedAt": "2026-12-01T00:00:00Z"},
                                      {"ID": "t2", "ServiceID": OTHER_ID}])
        if path == "/configs/create":
            body = await request.json()
            config_id = f"{len(self.configs) + 1:025d}"
            self.configs[config_id] = {"ID": config_id, "Spec": body}
            return web.json_response({"ID": config_id}, status=201)
        if path == "/configs":
            wanted = filters.get("label", [])
            return web.json_response([c for c in self.configs.values()
                                      if all(f"{k}={v}" in wanted for k, v in c["Spec"]["Labels"].items() if k == RECORD_LABEL)])
        if parts[0] == "configs" and request.method == "DELETE":
            return web.Response(status=204) if self.configs.pop(parts[1], None) else web.Response(status=404)
        if parts[0] == "configs":
            config = self.configs.get(parts[1])
            return web.json_response(config) if config else web.json_response({"message": "nf"}, status=404)
        return web.json_response({"message": f"fake engine: {path}"}, status=500)


@pytest.fixture
async def engine(aiohttp_server):
    fake = FakeEngine()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    fake.server = await aiohttp_server(app)
    return fake


LIMITS = Limits(max_body_bytes=64 * 1024, body_timeout=0.5, idle_timeout=0.5, docker_timeout=2)


@pytest.fixture
async def gate(aiohttp_client, engine):
    upstream = Upstream(f"tcp://127.0.0.1:{engine.server.port}", LIMITS.docker_timeout)
    return await aiohttp_client(create_gate_app(SCOPE, upstream, LIMITS))


def adapter(gate) -> DockerSwarm:
    return DockerSwarm(f"tcp://127.0.0.1:{gate.port}", 5)


async def test_the_receivers_adapter_reads_scales_and_keeps_records_through_the_gate(gate, engine):
    swarm = adapter(gate)
    snapshot = await asyncio.to_thread(swarm.inspect, "ollama_ollama")
    assert (snapshot.replicas, snapshot.running) == (1, 1)  # the other service's task is not shown
    assert (await asyncio.to_thread(swarm.node_status)).manager
    stamp = "2026-12-01T00:00:00.000000Z"
    await asyncio.to_thread(swarm.set_replicas, snapshot, 2, {STATE_LABELS["up"]: stamp})
    assert engine.updates[-1]["Mode"] == {"Replicated": {"Replicas": 2}}
    assert engine.updates[-1]["Labels"] == {"keep": "me", STATE_LABELS["up"]: stamp}
    assert await asyncio.to_thread(swarm.write_record, "ollama_ollama", {"replicas": 2, "labels": {}}, 10)
    assert await asyncio.to_thread(swarm.write_record, "ollama_ollama", {"replicas": 3, "labels": {}}, 11)
    assert not await asyncio.to_thread(swarm.write_record, "ollama_ollama", {"replicas": 1, "labels": {}}, 9)
    assert await asyncio.to_thread(swarm.read_record, "ollama_ollama") == {"replicas": 3, "labels": {}}
    assert len(engine.configs) == 1  # the older record was removed through the gate


async def test_a_read_costs_the_engine_two_calls_once_the_services_id_is_known(gate, engine):
    swarm = adapter(gate)
    await asyncio.to_thread(swarm.inspect, "ollama_ollama")
    engine.calls.clear()
    await asyncio.to_thread(swarm.inspect, "ollama_ollama")
    assert engine.calls == [("GET", "/v1.41/services/ollama_ollama"), ("GET", "/v1.41/tasks")]


async def test_an_update_for_the_version_just_read_costs_the_engine_one_call(gate, engine):
    swarm = adapter(gate)
    snapshot = await asyncio.to_thread(swarm.inspect, "ollama_ollama")
    engine.calls.clear()
    await asyncio.to_thread(swarm.set_replicas, snapshot, 2, {})
    assert engine.calls == [("POST", f"/v1.41/services/{OLLAMA_ID}/update")]


async def test_an_update_for_a_version_the_gate_did_not_read_is_a_409_before_any_write(gate, engine):
    body = json.dumps(engine.services[OLLAMA_ID]["Spec"])
    resp = await gate.post(f"/v1.41/services/{OLLAMA_ID}/update?version=9", data=body, headers=JSON)
    assert resp.status == 409 and "update out of sequence" in (await resp.json())["message"]
    assert [m for m, _ in engine.calls] == ["GET"] and engine.updates == []


async def test_tasks_by_an_unknown_id_are_refused_unless_it_is_a_configured_services(gate, engine):
    resp = await gate.get("/v1.41/tasks", params={"filters": json.dumps({"service": [OTHER_ID]})})
    assert resp.status == 403 and "not a configured service" in (await resp.json())["message"]


async def test_info_and_version_show_only_what_the_receiver_reads(gate):
    assert await (await gate.get("/v1.41/info")).json() == {"Swarm": {"LocalNodeState": "active", "ControlAvailable": True}}
    assert set(await (await gate.get("/version")).json()) == {"ApiVersion", "MinAPIVersion", "Version"}


async def test_a_name_filter_shows_only_exactly_named_configured_services(gate):
    resp = await gate.get("/v1.41/services", params={"filters": json.dumps({"name": ["ollama", "prometheus"]})})
    assert await resp.json() == []  # "ollama" is a prefix of ollama_ollama; prometheus is not configured


async def test_a_configured_name_that_the_engine_matches_as_another_services_id_prefix_is_not_found(gate, engine):
    engine.services[OLLAMA_ID]["Spec"]["Name"] = "renamed"
    swarm = adapter(gate)
    with pytest.raises(ServiceNotFound):
        await asyncio.to_thread(swarm.inspect, "ollama_ollama")


async def test_an_update_for_a_stale_version_is_a_conflict_the_receiver_retries(gate, engine):
    swarm = adapter(gate)
    snapshot = await asyncio.to_thread(swarm.inspect, "ollama_ollama")
    engine.services[OLLAMA_ID]["Version"]["Index"] += 1  # an operator's update in between:
    engine.services[OLLAMA_ID]["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"] = ["OPERATOR=1"]  # not a 403
    with pytest.raises(UpdateConflict):
        await asyncio.to_thread(swarm.set_replicas, snapshot, 2, {})
    assert engine.updates == []


async def test_an_engine_error_passes_through_and_the_receiver_reports_it(gate, engine):
    engine.fail_with = 500
    with pytest.raises(SwarmError, match="engine trouble"):
        await asyncio.to_thread(adapter(gate).inspect, "ollama_ollama")


async def test_docker_unreachable_is_a_502_naming_it(aiohttp_client):
    upstream = Upstream("unix:///nonexistent/docker.sock", 1)
    client = await aiohttp_client(create_gate_app(SCOPE, upstream, LIMITS))
    resp = await client.get("/_ping")
    assert resp.status == 502 and "Docker is unreachable" in (await resp.json())["message"]


UPDATE = f"/v1.41/services/{OLLAMA_ID}/update?version=10"
JSON = {"Content-Type": "application/json"}


async def chunks(*parts: bytes, pause: float = 0):
    for part in parts:
        await asyncio.sleep(pause)
        yield part


@pytest.mark.parametrize("method, path, body, headers, status", [
    ("POST", UPDATE, b'{"Name": "ollama_ollama", "Name": "x"}', JSON, 400),
    ("POST", UPDATE, b'{"Name": ', JSON, 400),
    ("POST", UPDATE, b"[" * 50_000, JSON, 400),
    ("POST", UPDATE, b"x" * (64 * 1024 + 1), JSON, 413),
    ("POST", UPDATE, b"{}", {"Content-Type": "text/plain"}, 415),
    ("POST", "/v1.41/configs/create", b'{"Name": "swarm-autoscaler-record-x", "Data": "!!"}', JSON, 403),
    ("GET", "/v1.41/containers/json", None, {}, 403),
    ("GET", "/v1.41/services/../containers/json", None, {}, 403),
    ("GET", "/v1.41/info", b"{}", JSON, 400),
    ("POST", UPDATE, b"{}", {**JSON, "X-Registry-Auth": "e30="}, 403),
])
async def test_bad_input_is_a_4xx_and_never_reaches_the_engine(gate, engine, method, path, body, headers, status):
    resp = await gate.request(method, path, data=body, headers=headers)
    assert resp.status == status, await resp.text()
    assert "message" in await resp.json()
    assert engine.calls == []


async def test_a_chunked_body_over_the_limit_is_a_413_and_never_reaches_the_engine(gate, engine):
    resp = await gate.post(UPDATE, data=chunks(*[b" " * 16_384] * 5), headers=JSON)
    assert resp.status == 413
    assert engine.calls == []


async def test_a_body_that_trickles_in_is_a_408_and_never_reaches_the_engine(gate, engine):
    resp = await gate.post(UPDATE, data=chunks(b"{", b" ", b" ", b"}", pause=0.3), headers=JSON)
    assert resp.status == 408
    assert engine.calls == []


async def test_a_refused_update_is_read_but_never_written(gate, engine):
    spec = {**engine.services[OLLAMA_ID]["Spec"], "TaskTemplate": {"ContainerSpec": {"Image": "evil"}}}
    resp = await gate.post(UPDATE, data=json.dumps(spec), headers=JSON)
    assert resp.status == 403
    assert "TaskTemplate.ContainerSpec.Image" in (await resp.json())["message"]
    assert [m for m, _ in engine.calls] == ["GET"] and engine.updates == []


async def test_a_request_head_that_never_completes_is_dropped_and_never_reaches_the_engine(gate, engine):
    reader, writer = await asyncio.open_connection("127.0.0.1", gate.port)
    writer.write(b"GET /v1.41/info HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), LIMITS.idle_timeout + 5) == b""  # closed by the gate
    writer.close()
    assert engine.calls == []
