"""Hostile input: thousands of generated requests give no 5xx, no crash and no Docker call;
every refusal is a 4xx that names the problem."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from devkit.fakes import FakeService, FakeSwarm
from receiver.app import create_app

from ..conftest import alert, make_config, payload, report

EXAMPLES = 5000
TOKEN = "hostile-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIGURED = "ollama_ollama"


class Server:
    """The production app on a real socket, in a thread of its own, with a fake swarm."""

    def __init__(self) -> None:
        self.swarm = FakeSwarm(FakeService(CONFIGURED, replicas=2))
        self.loop = asyncio.new_event_loop()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = create_app(make_config(max_body_bytes=64 * 1024), self.swarm, registry=CollectorRegistry(), token=TOKEN)
        self.runner = web.AppRunner(app)
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.stop()


STATUSES: Counter[int] = Counter()


# -- strategies -------------------------------------------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=50))
json_any = st.recursive(
    json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=30,
)
not_configured = st.text(min_size=1, max_size=80).filter(lambda s: s != CONFIGURED)


def deep(n: int) -> str:
    return "[" * n + "]" * n


@dataclass(frozen=True)
class Lazy:
    """A large body, built only when sent: hypothesis never has to print (repr) it."""

    label: str
    make: Callable[[], bytes] = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return f"<{self.label}>"


def body_bytes(body: bytes | Lazy) -> bytes:
    return body.make() if isinstance(body, Lazy) else body


def is_valid_count(text: str) -> bool:
    """What the receiver accepts as desired_replicas (receiver/models.py)."""
    return re.fullmatch(r"[0-9]{1,7}", text.strip()) is not None and int(text.strip()) <= 100_000


@st.composite
def mutated_payloads(draw: st.DrawFn) -> bytes | Lazy:
    """A valid payload with one thing broken."""
    body: dict[str, Any] = payload(alert(CONFIGURED, draw(st.sampled_from(["up", "down"]))))
    a = body["alerts"][0]
    kind = draw(st.sampled_from([
        "version", "drop_field", "wrong_type", "desired", "huge_string", "huge_array", "status", "alert_not_object",
    ]))
    if kind == "version":
        body["version"] = draw(st.one_of(st.text(max_size=10).filter(lambda v: v != "4"), st.integers(), st.none()))
    elif kind == "drop_field":
        field = draw(st.sampled_from(["version", "status", "alerts"]))
        if draw(st.booleans()):
            del body[field]
        else:
            del a[draw(st.sampled_from(["status", "labels"]))]
    elif kind == "wrong_type":
        target = draw(st.sampled_from(["alerts", "labels", "annotations", "status"]))
        value = draw(json_any.filter(lambda v: not isinstance(v, (list, dict, str))))
        if target == "alerts":
            body["alerts"] = value
        else:
            a[target] = value
    elif kind == "desired":
        a["annotations"]["desired_replicas"] = draw(st.one_of(
            st.integers(max_value=-1).map(str), st.integers(min_value=100_001).map(str),
            st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=20).filter(lambda t: t.strip() != "" and not is_valid_count(t)),
        ))
    elif kind == "huge_string":
        n = draw(st.integers(1000, 60_000))
        return Lazy(f"version of {n} characters", lambda: json.dumps({**body, "version": "4" * n}).encode())
    elif kind == "huge_array":
        n = draw(st.integers(1000, 20_000))
        return Lazy(f"alerts array of {n} numbers", lambda: json.dumps({**body, "alerts": [1] * n}).encode())
    elif kind == "status":
        a["status"] = draw(st.text(max_size=20).filter(lambda s: s not in ("firing", "resolved")))
    else:
        body["alerts"] = [draw(json_any.filter(lambda v: not isinstance(v, dict)))]
    return json.dumps(body).encode()


valid_but_harmless = st.builds(
    lambda service, scale, status: json.dumps(payload(alert(service, scale, status=status))).encode(),
    not_configured, st.text(max_size=20), st.sampled_from(["firing", "resolved"]),
)
junk_bytes = st.one_of(
    st.binary(max_size=2000),
    st.integers(2000, 100_000).map(lambda n: Lazy(f"{n} nested arrays", lambda: deep(n).encode())),
    json_any.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@st.composite
def requests_(draw: st.DrawFn) -> tuple[str, str, bytes | Lazy]:
    """(method, content type, body): mostly JSON posts with something wrong inside."""
    roll = draw(st.integers(0, 99))
    if roll < 80:
        return "POST", "application/json", draw(st.one_of(mutated_payloads(), junk_bytes, valid_but_harmless))
    if roll < 88:
        return draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH"])), "application/json", draw(mutated_payloads())
    if roll < 96:
        content_type = draw(st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]))
        return "POST", content_type, draw(mutated_payloads())
    n = draw(st.integers(64 * 1024 + 1, 300_000))
    return "POST", "application/json", Lazy(f"{n} spaces, over the body limit", lambda: b" " * n)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
@given(request=requests_())
def test_generated_hostile_requests_get_a_named_4xx_and_never_reach_docker(server, request):
    method, content_type, body = request
    calls_before = len(server.swarm.calls)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {**AUTH, "Content-Type": content_type} if content_type else dict(AUTH)
    conn.request(method, "/webhook", body=body_bytes(body), headers=headers)
    resp = conn.getresponse()
    answer = resp.read()
    conn.close()
    STATUSES[resp.status] += 1
    assert resp.status < 500, answer[:300]
    assert server.swarm.calls[calls_before:] == [], "a hostile request reached Docker"
    parsed = json.loads(answer)
    if resp.status == 200:
        assert all(d["reason"] == "unconfigured_service" for d in parsed["decisions"])
    else:
        assert 400 <= resp.status < 500
        assert parsed["error"]
        if resp.status == 400:
            assert parsed["problems"] and all(p["field"] and p["message"] for p in parsed["problems"])


def test_the_receiver_still_scales_after_the_hostile_run(server):
    total = sum(STATUSES.values())
    assert total >= EXAMPLES
    report(f"hostile input: {total} generated requests, answers by status {dict(sorted(STATUSES.items()))}, 0 Docker calls, 0 5xx")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/webhook", body=json.dumps(payload(alert(CONFIGURED, "up"))), headers={**AUTH, "Content-Type": "application/json"})
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    conn.close()
    assert resp.status == 200
    assert answer["decisions"][0]["reason"] == "scaled_up"
    assert server.swarm.updates == [f"update {CONFIGURED} 3"]
