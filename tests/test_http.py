"""The HTTP mapping: every answer of the receiver, and the metrics each one moves (fake swarm).

What the scaler decides is tested without HTTP in test_scaler.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from devkit.fakes import FakeService, FakeSwarm
from receiver.domain import DockerTimeout, DockerUnavailable, NodeStatus, SwarmError
from receiver.state import STATE_LABELS, encode_time

from .conftest import SERVICE, alert, payload, post_json, sample


async def test_a_firing_scale_up_alert_adds_one_replica_and_says_so(make_client, fake, clock):
    client, registry = await make_client()
    resp = await post_json(client, payload(alert()))
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "decisions": [{"service": SERVICE, "direction": "up", "from": 1, "to": 2, "reason": "scaled_up"}],
        "ignored": [],
    }
    assert fake.services[SERVICE].replicas == 2
    assert fake.services[SERVICE].labels[STATE_LABELS["up"]] == encode_time(clock.now)
    assert sample(registry, "autoscaler_decisions_total", service=SERVICE, direction="up", reason="scaled_up") == 1
    assert sample(registry, "autoscaler_scale_events_total", service=SERVICE, direction="up") == 1
    assert sample(registry, "autoscaler_last_scale_timestamp_seconds", service=SERVICE, direction="up") == clock.now
    assert sample(registry, "autoscaler_replicas", service=SERVICE) == 2
    assert sample(registry, "autoscaler_webhook_requests_total", code="200") == 1
    assert sample(registry, "autoscaler_webhook_request_duration_seconds_count") == 1
    assert sample(registry, "autoscaler_alerts_received_total", status="firing") == 1
    assert sample(registry, "autoscaler_docker_request_duration_seconds_count", operation="update") == 1


# --- refusals of bad requests: 4xx naming the problem, no Docker call ---------------------------

@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**payload(alert()), "version": "3"}, "version"),
        ({k: v for k, v in payload(alert()).items() if k != "alerts"}, "alerts"),
        (payload({**alert(), "status": "pending"}), "alerts.0.status"),
        (payload({**alert(), "labels": {"service": 7}}), "alerts.0.labels.service"),
        (payload(alert(desired="-1")), "alerts.0.annotations"),
        (payload(alert(desired="3.5")), "alerts.0.annotations"),
        (payload(alert(desired="100001")), "alerts.0.annotations"),
        ([1, 2, 3], "(body)"),
    ],
    ids=["version 3", "no alerts", "alert status pending", "label not a string", "negative desired_replicas",
         "fractional desired_replicas", "huge desired_replicas", "body is a list"],
)
async def test_an_invalid_payload_is_a_400_naming_the_field(make_client, fake, body, field):
    client, registry = await make_client()
    resp = await post_json(client, body)
    assert resp.status == 400
    answer = await resp.json()
    assert answer["error"] == "invalid webhook payload"
    assert field in [p["field"] for p in answer["problems"]]
    assert fake.calls == []
    assert sample(registry, "autoscaler_webhook_requests_total", code="400") == 1


async def test_broken_json_is_a_400(make_client, fake):
    client, _ = await make_client()
    resp = await client.post("/webhook", data=b'{"version": "4", ', headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "JSON" in json.dumps(await resp.json())
    assert fake.calls == []


async def test_a_body_above_the_limit_is_a_413(make_client, fake):
    client, registry = await make_client(max_body_bytes=4096)
    big = payload(*[alert(name=f"A{i}") for i in range(100)])
    resp = await post_json(client, big)
    assert resp.status == 413
    assert "4096" in (await resp.json())["error"]
    assert fake.calls == []
    assert sample(registry, "autoscaler_webhook_requests_total", code="413") == 1


async def test_a_body_that_is_not_json_content_is_a_415(make_client, fake):
    client, _ = await make_client()
    resp = await client.post("/webhook", data=json.dumps(payload(alert())), headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert "text/plain" in (await resp.json())["error"]
    assert fake.calls == []


async def test_a_get_on_the_webhook_is_a_counted_405(make_client, fake):
    client, registry = await make_client()
    resp = await client.get("/webhook")
    assert resp.status == 405
    assert sample(registry, "autoscaler_webhook_requests_total", code="405") == 1


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Bearer ", "", "Basic c2VjcmV0", "Bearer secret2", "bearer secret"])
async def test_without_the_right_token_a_post_is_a_401_and_docker_is_not_called(make_client, fake, header):
    client, registry = await make_client(token="secret")
    headers = {} if header is None else {"Authorization": header}
    resp = await post_json(client, payload(alert()), headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert fake.calls == []
    assert sample(registry, "autoscaler_webhook_requests_total", code="401") == 1


async def test_with_the_right_token_a_post_is_accepted(make_client, fake):
    client, _ = await make_client(token="secret")
    resp = await post_json(client, payload(alert()), headers={"Authorization": "Bearer secret"})
    assert resp.status == 200
    assert fake.services[SERVICE].replicas == 2


# --- Docker failures: transient ones 503 so Alertmanager retries, permanent ones 200 -----------

async def test_docker_unreachable_is_a_503_and_the_retry_scales_once(make_client, fake):
    client, registry = await make_client()
    fake.failures.append(DockerUnavailable("connection refused to http://docker.internal:2375/v1.41/x"))
    resp = await post_json(client, payload(alert()))
    assert resp.status == 503
    answer = await resp.json()
    assert answer["decisions"][0]["reason"] == "docker_error"
    assert answer["decisions"][0]["details"]["kind"] == "unavailable"
    assert "docker.internal" not in json.dumps(answer)  # the raw error is logged, not answered
    assert fake.services[SERVICE].replicas == 1
    assert sample(registry, "autoscaler_docker_errors_total", operation="inspect", kind="unavailable") == 1
    assert sample(registry, "autoscaler_webhook_requests_total", code="503") == 1
    resp = await post_json(client, payload(alert()))  # Alertmanager's retry
    assert resp.status == 200
    assert fake.updates == ["update ollama_ollama 2"]


class SlowSwarm(FakeSwarm):
    def __init__(self, *services):
        super().__init__(*services)
        self.inspecting = threading.Event()  # set once a read is under way

    def inspect(self, name):
        self.inspecting.set()
        time.sleep(0.5)
        return super().inspect(name)


async def test_a_docker_call_slower_than_the_timeout_is_a_503(make_client):
    swarm = SlowSwarm(FakeService(SERVICE))
    client, registry = await make_client(swarm=swarm, docker={"timeout": 0.1})
    resp = await post_json(client, payload(alert()))
    assert resp.status == 503
    assert (await resp.json())["decisions"][0]["details"]["kind"] == "timeout"
    assert sample(registry, "autoscaler_docker_errors_total", operation="inspect", kind="timeout") == 1


async def test_conflicts_beyond_the_retry_budget_are_a_503(make_client):
    class AlwaysMoving(FakeSwarm):
        def set_replicas(self, snapshot, replicas, labels):
            self.services[snapshot.name].version += 1
            return super().set_replicas(snapshot, replicas, labels)

    moving = AlwaysMoving(FakeService(SERVICE))
    client, registry = await make_client(swarm=moving, docker={"timeout": 2, "update_retries": 1})
    resp = await post_json(client, payload(alert()))
    assert resp.status == 503
    assert (await resp.json())["decisions"][0]["details"]["kind"] == "conflict"
    assert moving.services[SERVICE].replicas == 1
    assert sample(registry, "autoscaler_docker_errors_total", operation="update", kind="conflict") == 2


async def test_a_permanent_docker_refusal_is_answered_200_with_its_reason_and_not_retried(make_client, fake):
    client, registry = await make_client()
    fake.before_update = lambda: fake.failures.append(SwarmError("refused by the docker gate: TaskTemplate", 403))
    resp = await post_json(client, payload(alert()))
    assert resp.status == 200  # Alertmanager would retry a 5xx forever; a refusal will not change
    decision = (await resp.json())["decisions"][0]
    assert (decision["reason"], decision["details"]) == ("docker_refused", {"kind": "api_error", "status": 403})
    assert fake.services[SERVICE].replicas == 1
    assert sample(registry, "autoscaler_decisions_total", service=SERVICE, direction="up", reason="docker_refused") == 1
    status = await (await client.get("/status")).json()
    assert status["services"][0]["last_decision"]["reason"] == "docker_refused"


async def test_in_a_notification_for_two_services_each_gets_its_own_outcome(make_client):
    swarm = FakeSwarm(FakeService(SERVICE), FakeService("second"))
    services = {SERVICE: {"min_replicas": 1, "max_replicas": 4}, "second": {"min_replicas": 1, "max_replicas": 4}}
    client, _ = await make_client(swarm=swarm, services=services)
    original = swarm.inspect

    def second_fails(name):
        if name == "second":
            raise DockerUnavailable("down")
        return original(name)

    swarm.inspect = second_fails
    resp = await post_json(client, payload(alert(), alert(service="second")))
    assert resp.status == 503  # the second must be retried ...
    decisions = {d["service"]: d["reason"] for d in (await resp.json())["decisions"]}
    assert decisions == {SERVICE: "scaled_up", "second": "docker_error"}  # ... and the first is reported
    swarm.inspect = original
    resp = await post_json(client, payload(alert(), alert(service="second")))  # Alertmanager's retry
    assert resp.status == 200
    decisions = {d["service"]: d["reason"] for d in (await resp.json())["decisions"]}
    assert decisions == {SERVICE: "cooldown", "second": "scaled_up"}
    assert swarm.updates == ["update ollama_ollama 2", "update second 2"]


# --- health, readiness, status, metrics ----------------------------------------------------------

async def test_healthy_answers_without_docker(make_client, fake):
    client, _ = await make_client()
    fake.failures.append(DockerUnavailable("down"))
    resp = await client.get("/-/healthy")
    assert resp.status == 200
    assert fake.calls == []


async def test_ready_only_on_a_reachable_swarm_manager(make_client, fake):
    client, _ = await make_client()
    assert (await client.get("/-/ready")).status == 200
    fake.node = NodeStatus(swarm_state="active", manager=False)
    resp = await client.get("/-/ready")
    assert resp.status == 503
    assert "manager" in await resp.text()
    fake.node = NodeStatus(swarm_state="inactive", manager=False)
    assert (await client.get("/-/ready")).status == 503
    fake.node = NodeStatus(swarm_state="active", manager=True, leader_reachable=False, error="The swarm does not have a leader")
    resp = await client.get("/-/ready")
    assert resp.status == 503
    assert "leader" in await resp.text()
    fake.node = NodeStatus(swarm_state="active", manager=True)
    fake.failures.append(DockerUnavailable("connection refused"))
    resp = await client.get("/-/ready")
    assert resp.status == 503
    assert "unavailable" in await resp.text()


async def test_status_lists_each_configured_service_with_its_state_and_last_decision(make_client, fake, clock):
    client, _ = await make_client()
    await post_json(client, payload(alert()))
    clock.advance(30)
    body = await (await client.get("/status")).json()
    assert body["dry_run"] is False
    [entry] = body["services"]
    assert entry["service"] == SERVICE
    assert (entry["replicas_desired"], entry["replicas_running"]) == (2, 2)
    assert (entry["min_replicas"], entry["max_replicas"]) == (1, 4)
    assert entry["last_scale_up"] == encode_time(clock.now - 30)
    assert entry["last_scale_down"] is None
    assert entry["cooldown_remaining_up"] == 90
    assert entry["cooldown_remaining_down"] == 270
    assert entry["last_decision"]["reason"] == "scaled_up"


async def test_status_reports_a_docker_failure_per_service(make_client, fake):
    client, _ = await make_client()
    fake.failures.append(DockerTimeout("slow"))
    body = await (await client.get("/status")).json()
    assert "slow" in body["services"][0]["error"]


async def test_metrics_are_exposed_in_the_prometheus_text_format(make_client):
    client, _ = await make_client()
    await post_json(client, payload(alert()))
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    for name in ("autoscaler_decisions_total", "autoscaler_scale_events_total", "autoscaler_replicas",
                 "autoscaler_last_scale_timestamp_seconds", "autoscaler_webhook_requests_total",
                 "autoscaler_webhook_request_duration_seconds_bucket", "autoscaler_docker_request_duration_seconds_bucket",
                 "autoscaler_alerts_received_total"):
        assert name in text


async def test_a_body_that_trickles_in_too_slowly_is_a_503_so_alertmanager_retries(make_client, fake):
    client, registry = await make_client(body_timeout=0.2)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ver")
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 503")  # Alertmanager retries 5xx, never a 408
    assert fake.calls == []
    assert sample(registry, "autoscaler_webhook_requests_total", code="503") == 1


async def test_requests_beyond_the_concurrency_bound_get_a_503_busy_and_change_nothing(make_client):
    swarm = SlowSwarm(FakeService(SERVICE))
    client, registry = await make_client(swarm=swarm, webhook_concurrency=1, queue_timeout=0.1)
    first = asyncio.ensure_future(post_json(client, payload(alert())))
    await asyncio.to_thread(swarm.inspecting.wait, 5)  # the first request holds the one slot
    second = await post_json(client, payload(alert()))
    assert second.status == 503
    assert (await second.json())["kind"] == "busy"
    assert (await first).status == 200
    assert swarm.updates == ["update ollama_ollama 2"]


async def test_status_and_readiness_cost_one_docker_read_per_interval_whatever_their_rate(make_client, fake, clock):
    client, _ = await make_client(status_cache=60)
    answers = await asyncio.gather(*(client.get(path) for path in ["/status", "/-/ready"] * 50))
    assert {a.status for a in answers} == {200}
    assert fake.calls.count(f"inspect {SERVICE}") == 1
    assert fake.calls.count("node_status") == 1
    resp = await post_json(client, payload(alert()))  # the webhook does not wait behind them
    assert resp.status == 200


async def test_paused_shows_in_status(make_client, fake):
    fake.services[SERVICE].labels["swarm-autoscaler.paused"] = "true"
    client, _ = await make_client()
    assert (await (await client.get("/status")).json())["services"][0]["paused"] is True


async def test_readiness_failures_are_shared_too_so_a_down_docker_costs_one_call_per_interval(make_client, fake):
    client, _ = await make_client(status_cache=60)
    fake.failures.extend(DockerUnavailable("down") for _ in range(100))
    answers = await asyncio.gather(*(client.get("/-/ready") for _ in range(40)))
    assert {a.status for a in answers} == {503}
    assert fake.calls.count("node_status") == 1


async def test_a_sender_that_never_reads_its_answer_does_not_keep_its_slot(make_client, fake):
    import socket

    from receiver.config import DEFAULT_MAX_BODY_BYTES

    # The longest answer a body within the limit can ask for: the shortest alerts the model accepts,
    # each naming another service (one decision each in the answer, ~2 MB in all). The answer waits
    # in the socket's send buffer, not in the handler: the slot is free once it is written there.
    alerts, size = [], 100
    while size < DEFAULT_MAX_BODY_BYTES - 100:
        alerts.append({"status": "firing", "labels": {"service": f"s{len(alerts)}", "scale": "up"}})
        size += len(json.dumps(alerts[-1], separators=(",", ":"))) + 1
    body = json.dumps({"version": "4", "status": "firing", "alerts": alerts}, separators=(",", ":")).encode()
    assert len(body) <= DEFAULT_MAX_BODY_BYTES
    client, registry = await make_client(webhook_concurrency=1, queue_timeout=10)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (client.host, client.port))
    head = f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    try:
        await loop.sock_sendall(sock, head.encode() + body)  # and it reads nothing
        for _ in range(200):  # its notification is decided; its answer is on its way
            if sample(registry, "autoscaler_alerts_received_total", status="firing") == len(alerts):
                break
            await asyncio.sleep(0.05)
        started = time.monotonic()
        answer = await post_json(client, payload(alert()))
        waited = time.monotonic() - started
        assert answer.status == 200 and (await answer.json())["decisions"][0]["reason"] == "scaled_up"
        assert waited < 5, waited  # not held until queue_timeout (10 s)
        assert fake.services[SERVICE].replicas == 2
        assert sample(registry, "autoscaler_webhook_requests_total", code="200") == 2  # the unread one counted as answered
    finally:
        sock.close()
