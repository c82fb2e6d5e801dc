"""Every HTTP answer of the receiver, and the metrics each one moves (fake swarm)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from receiver.state import STATE_LABELS, encode_time
from receiver.swarm import DockerTimeout, DockerUnavailable, NodeStatus

from .conftest import alert, payload, post_json
from .fakes import FakeService, FakeSwarm

SERVICE = "ollama_ollama"


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0.0


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


async def test_a_scale_down_alert_removes_one_replica(make_client, fake):
    fake.services[SERVICE].replicas = 3
    client, registry = await make_client()
    body = await (await post_json(client, payload(alert(scale="down", name="OllamaLowCPU")))).json()
    assert body["decisions"][0] == {"service": SERVICE, "direction": "down", "from": 3, "to": 2, "reason": "scaled_down"}
    assert fake.services[SERVICE].replicas == 2
    assert STATE_LABELS["down"] in fake.services[SERVICE].labels


async def test_a_no_op_is_answered_200_with_its_reason_and_changes_nothing(make_client, fake):
    fake.services[SERVICE].replicas = 4
    client, registry = await make_client()
    resp = await post_json(client, payload(alert()))
    assert resp.status == 200
    assert (await resp.json())["decisions"][0]["reason"] == "at_max"
    assert fake.updates == []
    assert sample(registry, "autoscaler_decisions_total", service=SERVICE, direction="up", reason="at_max") == 1
    assert sample(registry, "autoscaler_scale_events_total", service=SERVICE, direction="up") == 0


async def test_desired_replicas_above_max_lands_on_max(make_client, fake):
    client, _ = await make_client()
    body = await (await post_json(client, payload(alert(desired="40")))).json()
    assert body["decisions"][0]["reason"] == "clamped_to_max"
    assert body["decisions"][0]["to"] == 4
    assert fake.services[SERVICE].replicas == 4


async def test_an_empty_desired_replicas_asks_for_a_step(make_client, fake):
    # A rule template whose query found nothing renders an empty annotation.
    client, _ = await make_client()
    body = await (await post_json(client, payload(alert(desired=" ")))).json()
    assert (body["decisions"][0]["reason"], body["decisions"][0]["to"]) == ("scaled_up", 2)


async def test_resolved_alerts_are_counted_and_never_touch_docker(make_client, fake):
    client, registry = await make_client()
    body = await (await post_json(client, payload(alert(status="resolved")))).json()
    assert body["decisions"] == []
    assert body["ignored"] == [{"alertname": "OllamaHighCPU", "fingerprint": f"{SERVICE}-up-OllamaHighCPU", "reason": "resolved"}]
    assert fake.calls == []
    assert sample(registry, "autoscaler_alerts_received_total", status="resolved") == 1
    assert sample(registry, "autoscaler_alerts_ignored_total", reason="resolved") == 1


async def test_alerts_without_the_contract_labels_are_ignored_with_a_reason(make_client, fake):
    client, registry = await make_client()
    body = await (await post_json(client, payload(alert(service=None), alert(scale="left")))).json()
    assert [i["reason"] for i in body["ignored"]] == ["missing_labels", "invalid_scale_label"]
    assert fake.calls == []
    assert sample(registry, "autoscaler_alerts_ignored_total", reason="missing_labels") == 1


async def test_several_alerts_for_one_service_make_one_decision_and_up_wins(make_client, fake):
    fake.services[SERVICE].replicas = 2
    client, _ = await make_client()
    alerts = [alert(scale="down", name="OllamaLowCPU"), alert(desired="3"), alert(name="OllamaHighGPU")]
    body = await (await post_json(client, payload(*alerts))).json()
    assert [(d["direction"], d["to"]) for d in body["decisions"]] == [("up", 3)]
    assert fake.updates == ["update ollama_ollama 3"]


async def test_an_unconfigured_service_is_refused_without_asking_docker(make_client, fake):
    fake.services["other"] = FakeService("other", replicas=1)
    client, registry = await make_client()
    body = await (await post_json(client, payload(alert(service="other")))).json()
    assert body["decisions"] == [{"service": "other", "direction": "up", "from": None, "to": None, "reason": "unconfigured_service"}]
    assert fake.calls == []
    assert sample(registry, "autoscaler_decisions_total", service="_unconfigured", direction="up", reason="unconfigured_service") == 1


async def test_a_configured_service_missing_from_the_swarm_is_reported(make_client):
    client, _ = await make_client(swarm=FakeSwarm())
    body = await (await post_json(client, payload(alert()))).json()
    assert body["decisions"][0]["reason"] == "service_not_found"


async def test_a_global_service_is_refused_and_left_alone(make_client):
    swarm = FakeSwarm(FakeService(SERVICE, mode="global"))
    client, _ = await make_client(swarm=swarm)
    body = await (await post_json(client, payload(alert()))).json()
    assert body["decisions"][0]["reason"] == "global_mode"
    assert swarm.updates == []


async def test_a_paused_service_is_refused_with_reason_paused_until_the_label_goes(make_client, fake):
    fake.services[SERVICE].labels["swarm-autoscaler.paused"] = "true"
    client, registry = await make_client()
    body = await (await post_json(client, payload(alert()))).json()
    assert body["decisions"][0]["reason"] == "paused"
    assert fake.updates == []
    assert (await (await client.get("/status")).json())["services"][0]["paused"] is True
    del fake.services[SERVICE].labels["swarm-autoscaler.paused"]
    body = await (await post_json(client, payload(alert()))).json()
    assert body["decisions"][0]["reason"] == "scaled_up"


async def test_an_unreadable_state_label_refuses_instead_of_guessing(make_client, fake):
    fake.services[SERVICE].labels[STATE_LABELS["up"]] = "yesterday"
    client, _ = await make_client()
    body = await (await post_json(client, payload(alert()))).json()
    assert body["decisions"][0]["reason"] == "invalid_state_label"
    assert "yesterday" in body["decisions"][0]["details"]["error"]
    assert fake.updates == []


async def test_a_second_alert_inside_the_cooldown_is_a_reported_no_op(make_client, fake, clock):
    client, registry = await make_client()
    await post_json(client, payload(alert()))
    clock.advance(60)
    body = await (await post_json(client, payload(alert()))).json()
    assert body["decisions"][0]["reason"] == "cooldown"
    assert body["decisions"][0]["details"]["cooldown_remaining"] == 60
    clock.advance(60)
    body = await (await post_json(client, payload(alert()))).json()
    assert body["decisions"][0]["reason"] == "scaled_up"
    assert fake.services[SERVICE].replicas == 3


async def test_the_cooldown_survives_a_new_receiver_because_it_lives_on_the_service(make_client, fake, clock):
    first, _ = await make_client()
    await post_json(first, payload(alert()))
    second, _ = await make_client()  # a new app: no memory of the first one
    body = await (await post_json(second, payload(alert()))).json()
    assert body["decisions"][0]["reason"] == "cooldown"
    assert fake.services[SERVICE].replicas == 2


async def test_concurrent_duplicate_notifications_give_exactly_one_step(make_client, fake):
    client, registry = await make_client()
    answers = await asyncio.gather(*(post_json(client, payload(alert())) for _ in range(20)))
    reasons = sorted([(await a.json())["decisions"][0]["reason"] for a in answers])
    assert reasons == ["cooldown"] * 19 + ["scaled_up"]
    assert fake.services[SERVICE].replicas == 2
    assert fake.updates == ["update ollama_ollama 2"]


async def test_dry_run_decides_and_reports_but_changes_nothing(make_client, fake):
    client, registry = await make_client(dry_run=True)
    body = await (await post_json(client, payload(alert()))).json()
    assert body["decisions"][0] == {"service": SERVICE, "direction": "up", "from": 1, "to": 2, "reason": "dry_run"}
    assert fake.updates == []
    assert fake.services[SERVICE].replicas == 1
    assert sample(registry, "autoscaler_decisions_total", service=SERVICE, direction="up", reason="dry_run") == 1


async def test_one_json_log_line_per_decision_carries_the_same_reason(make_client, caplog, clock):
    client, _ = await make_client()
    with caplog.at_level(logging.INFO, logger="receiver.decisions"):
        await post_json(client, payload(alert()))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "receiver.decisions"]
    assert lines == [{"event": "decision", "at": encode_time(clock.now), "dry_run": False, "service": SERVICE, "direction": "up", "from": 1, "to": 2, "reason": "scaled_up"}]


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


# --- Docker failures: 503 so Alertmanager retries, nothing half-applied ------------------------

async def test_docker_unreachable_is_a_503_and_the_retry_scales_once(make_client, fake):
    client, registry = await make_client()
    fake.failures.append(DockerUnavailable("connection refused"))
    resp = await post_json(client, payload(alert()))
    assert resp.status == 503
    assert (await resp.json())["kind"] == "unavailable"
    assert fake.services[SERVICE].replicas == 1
    assert sample(registry, "autoscaler_docker_errors_total", operation="inspect", kind="unavailable") == 1
    assert sample(registry, "autoscaler_webhook_requests_total", code="503") == 1
    resp = await post_json(client, payload(alert()))  # Alertmanager's retry
    assert resp.status == 200
    assert fake.updates == ["update ollama_ollama 2"]


async def test_a_failed_update_is_a_503_and_leaves_the_replicas(make_client, fake):
    client, registry = await make_client()
    fake.before_update = lambda: fake.failures.append(DockerUnavailable("socket closed"))
    resp = await post_json(client, payload(alert()))
    assert resp.status == 503
    assert fake.services[SERVICE].replicas == 1
    assert STATE_LABELS["up"] not in fake.services[SERVICE].labels
    assert sample(registry, "autoscaler_docker_errors_total", operation="update", kind="unavailable") == 1


class SlowSwarm(FakeSwarm):
    def inspect(self, name):
        time.sleep(0.5)
        return super().inspect(name)


async def test_a_docker_call_slower_than_the_timeout_is_a_503(make_client):
    swarm = SlowSwarm(FakeService(SERVICE))
    client, registry = await make_client(swarm=swarm, docker={"timeout": 0.1})
    resp = await post_json(client, payload(alert()))
    assert resp.status == 503
    assert (await resp.json())["kind"] == "timeout"
    assert sample(registry, "autoscaler_docker_errors_total", operation="inspect", kind="timeout") == 1


async def test_a_change_by_someone_else_between_read_and_write_is_reread_and_kept(make_client, fake):
    client, _ = await make_client()

    def operator_update():  # someone else updates the service between our read and our write
        svc = fake.services[SERVICE]
        svc.labels["team"] = "ml"
        svc.version += 1

    fake.before_update = operator_update
    resp = await post_json(client, payload(alert()))
    assert resp.status == 200
    assert fake.updates == ["update ollama_ollama 2", "update ollama_ollama 2"]  # refused once, then applied
    assert fake.services[SERVICE].labels["team"] == "ml"
    assert fake.services[SERVICE].replicas == 2


async def test_conflicts_beyond_the_retry_budget_are_a_503(make_client):
    class AlwaysMoving(FakeSwarm):
        def set_replicas(self, snapshot, replicas, labels):
            self.services[snapshot.name].version += 1
            return super().set_replicas(snapshot, replicas, labels)

    moving = AlwaysMoving(FakeService(SERVICE))
    client, registry = await make_client(swarm=moving, docker={"timeout": 2, "update_retries": 1})
    resp = await post_json(client, payload(alert()))
    assert resp.status == 503
    assert (await resp.json())["kind"] == "conflict"
    assert moving.services[SERVICE].replicas == 1
    assert sample(registry, "autoscaler_docker_errors_total", operation="update", kind="conflict") == 2


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
    assert "connection refused" in await resp.text()


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


async def test_a_body_that_trickles_in_too_slowly_is_a_408(make_client, fake):
    client, registry = await make_client(body_timeout=0.2)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ver")
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 408")
    assert fake.calls == []
    assert sample(registry, "autoscaler_webhook_requests_total", code="408") == 1


async def test_requests_beyond_the_concurrency_bound_get_a_503_busy_and_change_nothing(make_client):
    swarm = SlowSwarm(FakeService(SERVICE))
    client, registry = await make_client(swarm=swarm, webhook_concurrency=1, queue_timeout=0.1)
    first = asyncio.ensure_future(post_json(client, payload(alert())))
    await asyncio.sleep(0.1)
    second = await post_json(client, payload(alert()))
    assert second.status == 503
    assert (await second.json())["kind"] == "busy"
    assert (await first).status == 200
    assert swarm.updates == ["update ollama_ollama 2"]
