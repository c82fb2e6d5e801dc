"""The scaler without HTTP: what a notification decides, applies and counts (fake swarm).

The HTTP mapping of these outcomes is in test_http.py; the same behaviours against the real
engine are in tests/swarm.
"""

from __future__ import annotations

import asyncio
import json
import logging

from devkit.fakes import FakeService, FakeSwarm
from receiver.domain import DockerUnavailable
from receiver.state import STATE_LABELS, encode_time

from .conftest import SERVICE, alert, notify, sample


async def test_a_scale_down_alert_removes_one_replica(make_scaler, fake):
    fake.services[SERVICE].replicas = 3
    scaler, registry = make_scaler()
    body = await notify(scaler, alert(scale="down", name="OllamaLowCPU"))
    assert body["decisions"][0] == {"service": SERVICE, "direction": "down", "from": 3, "to": 2, "reason": "scaled_down"}
    assert fake.services[SERVICE].replicas == 2
    assert STATE_LABELS["down"] in fake.services[SERVICE].labels


async def test_a_no_op_is_reported_with_its_reason_and_changes_nothing(make_scaler, fake):
    fake.services[SERVICE].replicas = 4
    scaler, registry = make_scaler()
    body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "at_max"
    assert fake.updates == []
    assert sample(registry, "autoscaler_decisions_total", service=SERVICE, direction="up", reason="at_max") == 1
    assert sample(registry, "autoscaler_scale_events_total", service=SERVICE, direction="up") == 0


async def test_desired_replicas_above_max_lands_on_max(make_scaler, fake):
    scaler, _ = make_scaler()
    body = await notify(scaler, alert(desired="40"))
    assert body["decisions"][0]["reason"] == "clamped_to_max"
    assert body["decisions"][0]["to"] == 4
    assert fake.services[SERVICE].replicas == 4


async def test_an_empty_desired_replicas_asks_for_a_step(make_scaler, fake):
    # A rule template whose query found nothing renders an empty annotation.
    scaler, _ = make_scaler()
    body = await notify(scaler, alert(desired=" "))
    assert (body["decisions"][0]["reason"], body["decisions"][0]["to"]) == ("scaled_up", 2)


async def test_resolved_alerts_are_counted_and_never_touch_docker(make_scaler, fake):
    scaler, registry = make_scaler()
    body = await notify(scaler, alert(status="resolved"))
    assert body["decisions"] == []
    assert body["ignored"] == [{"alertname": "OllamaHighCPU", "fingerprint": f"{SERVICE}-up-OllamaHighCPU", "reason": "resolved"}]
    assert fake.calls == []
    assert sample(registry, "autoscaler_alerts_received_total", status="resolved") == 1
    assert sample(registry, "autoscaler_alerts_ignored_total", reason="resolved") == 1


async def test_alerts_without_the_contract_labels_are_ignored_with_a_reason(make_scaler, fake):
    scaler, registry = make_scaler()
    body = await notify(scaler, alert(service=None), alert(scale="left"))
    assert [i["reason"] for i in body["ignored"]] == ["missing_labels", "invalid_scale_label"]
    assert fake.calls == []
    assert sample(registry, "autoscaler_alerts_ignored_total", reason="missing_labels") == 1


async def test_several_alerts_for_one_service_make_one_decision_and_up_wins(make_scaler, fake):
    fake.services[SERVICE].replicas = 2
    scaler, _ = make_scaler()
    alerts = [alert(scale="down", name="OllamaLowCPU"), alert(desired="3"), alert(name="OllamaHighGPU")]
    body = await notify(scaler, *alerts)
    assert [(d["direction"], d["to"]) for d in body["decisions"]] == [("up", 3)]
    assert fake.updates == ["update ollama_ollama 3"]


async def test_an_unconfigured_service_is_refused_without_asking_docker(make_scaler, fake):
    fake.services["other"] = FakeService("other", replicas=1)
    scaler, registry = make_scaler()
    body = await notify(scaler, alert(service="other"))
    assert body["decisions"] == [{"service": "other", "direction": "up", "from": None, "to": None, "reason": "unconfigured_service"}]
    assert fake.calls == []
    assert sample(registry, "autoscaler_decisions_total", service="_unconfigured", direction="up", reason="unconfigured_service") == 1


async def test_a_configured_service_missing_from_the_swarm_is_reported(make_scaler):
    scaler, _ = make_scaler(swarm=FakeSwarm())
    body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "service_not_found"


async def test_a_global_service_is_refused_and_left_alone(make_scaler):
    swarm = FakeSwarm(FakeService(SERVICE, mode="global"))
    scaler, _ = make_scaler(swarm=swarm)
    body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "global_mode"
    assert swarm.updates == []


async def test_a_paused_service_is_refused_with_reason_paused_until_the_label_goes(make_scaler, fake):
    fake.services[SERVICE].labels["swarm-autoscaler.paused"] = "true"
    scaler, registry = make_scaler()
    body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "paused"
    assert fake.updates == []
    del fake.services[SERVICE].labels["swarm-autoscaler.paused"]
    body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "scaled_up"


async def test_an_unreadable_state_label_refuses_instead_of_guessing(make_scaler, fake):
    fake.services[SERVICE].labels[STATE_LABELS["up"]] = "yesterday"
    scaler, _ = make_scaler()
    body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "invalid_state_label"
    assert "yesterday" in body["decisions"][0]["details"]["error"]
    assert fake.updates == []


async def test_a_second_alert_inside_the_cooldown_is_a_reported_no_op(make_scaler, fake, clock):
    scaler, registry = make_scaler()
    await notify(scaler, alert())
    clock.advance(60)
    body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "cooldown"
    assert body["decisions"][0]["details"]["cooldown_remaining"] == 60
    clock.advance(60)
    body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "scaled_up"
    assert fake.services[SERVICE].replicas == 3


async def test_the_cooldown_survives_a_new_receiver_because_it_lives_on_the_service(make_scaler, fake, clock):
    first, _ = make_scaler()
    await notify(first, alert())
    second, _ = make_scaler()  # a new app: no memory of the first one
    body = await notify(second, alert())
    assert body["decisions"][0]["reason"] == "cooldown"
    assert fake.services[SERVICE].replicas == 2


async def test_concurrent_duplicate_notifications_give_exactly_one_step(make_scaler, fake):
    scaler, registry = make_scaler()
    answers = await asyncio.gather(*(notify(scaler, alert()) for _ in range(20)))
    reasons = sorted(a["decisions"][0]["reason"] for a in answers)
    assert reasons == ["cooldown"] * 19 + ["scaled_up"]
    assert fake.services[SERVICE].replicas == 2
    assert fake.updates == ["update ollama_ollama 2"]


async def test_dry_run_decides_and_reports_but_changes_nothing(make_scaler, fake):
    scaler, registry = make_scaler(dry_run=True)
    body = await notify(scaler, alert())
    assert body["decisions"][0] == {"service": SERVICE, "direction": "up", "from": 1, "to": 2, "reason": "scaled_up",
                                    "dry_run": "would"}
    assert fake.updates == []
    assert fake.services[SERVICE].replicas == 1
    assert sample(registry, "autoscaler_decisions_total", service=SERVICE, direction="up", reason="scaled_up") == 1
    assert sample(registry, "autoscaler_scale_events_total", service=SERVICE, direction="up") == 0


async def test_one_json_log_line_per_decision_carries_the_same_reason(make_scaler, caplog, clock):
    scaler, _ = make_scaler()
    with caplog.at_level(logging.INFO, logger="receiver.decisions"):
        await notify(scaler, alert())
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "receiver.decisions"]
    assert lines == [{"event": "decision", "at": encode_time(clock.now), "service": SERVICE,
                      "direction": "up", "from": 1, "to": 2, "reason": "scaled_up"}]


async def test_a_change_by_someone_else_between_read_and_write_is_reread_and_kept(make_scaler, fake):
    scaler, _ = make_scaler()

    def operator_update():  # someone else updates the service between our read and our write
        svc = fake.services[SERVICE]
        svc.labels["team"] = "ml"
        svc.version += 1

    fake.before_update = operator_update
    body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "scaled_up"
    assert fake.updates == ["update ollama_ollama 2", "update ollama_ollama 2"]  # refused once, then applied
    assert fake.services[SERVICE].labels["team"] == "ml"
    assert fake.services[SERVICE].replicas == 2


async def test_a_failed_update_is_a_transient_docker_error_and_leaves_the_replicas(make_scaler, fake):
    scaler, registry = make_scaler()
    fake.before_update = lambda: fake.failures.append(DockerUnavailable("socket closed"))
    body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "docker_error"
    assert body["decisions"][0]["details"] == {"kind": "unavailable"}
    assert fake.services[SERVICE].replicas == 1
    assert STATE_LABELS["up"] not in fake.services[SERVICE].labels
    assert sample(registry, "autoscaler_docker_errors_total", operation="update", kind="unavailable") == 1


# --- what a real deployment does to a decision (issue: correct in a real deployment) ----------


async def test_a_state_label_a_year_ahead_holds_scaling_for_one_cooldown_not_a_year(make_scaler, fake, clock, caplog):
    fake.services[SERVICE].replicas = 2
    fake.services[SERVICE].labels[STATE_LABELS["up"]] = encode_time(clock.now + 365 * 86400)  # a clock ahead
    scaler, _ = make_scaler()
    with caplog.at_level(logging.WARNING, logger="receiver.decisions"):
        body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "cooldown"
    assert body["decisions"][0]["details"]["cooldown_remaining"] == 120  # not 31,536,000
    assert any('"state_label_in_future"' in r.getMessage() for r in caplog.records)
    clock.advance(119)
    assert (await notify(scaler, alert()))["decisions"][0]["reason"] == "cooldown"
    clock.advance(1)
    assert (await notify(scaler, alert()))["decisions"][0]["reason"] == "scaled_up"


async def test_a_crash_looping_replica_holds_scale_ups_for_one_convergence_wait_not_forever(make_scaler, fake, clock):
    svc = fake.services[SERVICE]
    svc.replicas, svc.running = 2, 1
    scaler, _ = make_scaler()
    for _ in range(5):  # every read finds a fresh replacement task, created a moment ago
        svc.pending_since = clock.now - 1
        assert (await notify(scaler, alert()))["decisions"][0]["reason"] == "not_converged"
        clock.advance(60)
    svc.pending_since = clock.now - 1
    clock.advance(1)  # 300 s (convergence_wait) since the first read that found it short
    assert (await notify(scaler, alert()))["decisions"][0]["reason"] == "scaled_up"


async def test_alerts_naming_many_unconfigured_services_grow_no_table(make_scaler, fake):
    scaler, registry = make_scaler()
    for i in range(200):
        await notify(scaler, alert(service=f"made-up-{i}"))
    assert set(scaler.locks) == {SERVICE}
    assert set(scaler.last_decisions) == set()
    assert sample(registry, "autoscaler_decisions_total", service="_unconfigured", direction="up",
                  reason="unconfigured_service") == 200


async def test_a_service_in_a_rolling_update_is_not_scaled_until_the_update_ends(make_scaler, fake):
    fake.services[SERVICE].updating = True
    scaler, _ = make_scaler()
    assert (await notify(scaler, alert()))["decisions"][0]["reason"] == "update_in_progress"
    assert fake.updates == []
    fake.services[SERVICE].updating = False
    assert (await notify(scaler, alert()))["decisions"][0]["reason"] == "scaled_up"


async def test_a_future_label_shows_how_far_ahead_it_was_in_the_answer(make_scaler, fake, clock):
    fake.services[SERVICE].replicas = 2
    fake.services[SERVICE].labels[STATE_LABELS["up"]] = encode_time(clock.now + 3600)
    scaler, _ = make_scaler()
    details = (await notify(scaler, alert()))["decisions"][0]["details"]
    assert details["clock_ahead"] == 3600 and details["cooldown_remaining"] == 120


async def test_a_service_never_scaled_has_its_record_looked_up_once_per_version(make_scaler, fake):
    fake.services[SERVICE].replicas = 4  # at max: every alert is a no-op
    scaler, _ = make_scaler()
    for _ in range(5):
        assert (await notify(scaler, alert()))["decisions"][0]["reason"] == "at_max"
    assert fake.calls.count(f"read_record {SERVICE}") == 1
    fake.services[SERVICE].version += 1  # a redeploy, or anyone's write
    await notify(scaler, alert())
    assert fake.calls.count(f"read_record {SERVICE}") == 2


async def test_a_service_removed_between_our_read_and_our_write_is_reported_as_not_found(make_scaler, fake):
    scaler, _ = make_scaler()
    fake.before_update = lambda: fake.services.pop(SERVICE)
    body = await notify(scaler, alert())
    assert body["decisions"][0]["reason"] == "service_not_found"  # re-read, not a permanent refusal


async def found_short(make_scaler, fake, clock):
    """A scaler whose first read found the service short (one of two running, one on its way)."""
    svc = fake.services[SERVICE]
    svc.replicas, svc.running, svc.pending_since = 2, 1, clock.now - 1
    scaler, _ = make_scaler()
    assert (await notify(scaler, alert()))["decisions"][0]["reason"] == "not_converged"
    return scaler, svc


async def test_a_read_that_meets_a_crash_looping_task_in_its_moment_of_running_does_not_end_the_wait(make_scaler, fake, clock):
    # On the real engine such a task is `running` for ~0.1 s between `starting` and `failed`.
    scaler, svc = await found_short(make_scaler, fake, clock)
    clock.advance(10)
    svc.running, svc.pending_since, svc.running_since = 2, None, clock.now - 0.05
    held = (await notify(scaler, alert()))["decisions"][0]
    assert (held["reason"], held["details"]) == ("not_converged", {"running": 2, "waited": 11.0, "settling": True})
    clock.advance(10)
    svc.running, svc.pending_since, svc.running_since = 1, clock.now - 0.5, None  # it failed: replaced
    assert (await notify(scaler, alert()))["decisions"][0]["details"]["waited"] == 21.0  # not restarted
    clock.advance(10)
    svc.running, svc.pending_since, svc.running_since = 2, None, clock.now - 5  # it stayed up: settled
    assert (await notify(scaler, alert()))["decisions"][0]["reason"] == "scaled_up"


async def test_a_whole_service_is_not_held_for_a_task_that_just_started_unless_it_was_found_short(make_scaler, fake, clock):
    svc = fake.services[SERVICE]
    svc.replicas, svc.running, svc.running_since = 2, 2, clock.now - 0.05  # e.g. an operator's restart
    scaler, _ = make_scaler()
    assert (await notify(scaler, alert()))["decisions"][0]["reason"] == "scaled_up"


async def test_a_crash_looping_task_on_a_node_whose_clock_runs_behind_does_not_look_settled(make_scaler, fake, clock):
    scaler, svc = await found_short(make_scaler, fake, clock)
    clock.advance(10)
    # the node stamped its start a minute ago by its clock; this receiver first sees it running now
    svc.running, svc.pending_since, svc.running_since, svc.running_task = 2, None, clock.now - 60, "t1"
    assert (await notify(scaler, alert()))["decisions"][0]["details"]["settling"] is True
    clock.advance(4)
    svc.running_task = "t2"  # it failed; its replacement is running for a moment in turn
    assert (await notify(scaler, alert()))["decisions"][0]["details"]["settling"] is True
    clock.advance(5)  # t2 stayed up for 5 s as this receiver saw it
    assert (await notify(scaler, alert()))["decisions"][0]["reason"] == "scaled_up"
