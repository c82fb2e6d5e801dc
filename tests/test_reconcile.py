"""Restoring the last decision after a redeploy, and keeping the record current (fake swarm)."""

from __future__ import annotations

import asyncio

import pytest

from devkit.fakes import FakeService, FakeSwarm
from receiver.app import SCALER
from receiver.config import ServicePolicy
from receiver.domain import DockerUnavailable, ServiceSnapshot
from receiver.state import STATE_LABELS, Record, Repair, plan_repair, record_of

from .conftest import alert, payload, post_json

SERVICE = "ollama_ollama"
POLICY = ServicePolicy(min_replicas=1, max_replicas=4)
UP_LABEL = STATE_LABELS["up"]
T1 = "2026-12-01T10:00:00.000000Z"


def snap(replicas: int, labels: dict[str, str]) -> ServiceSnapshot:
    return ServiceSnapshot(id="x", name=SERVICE, version=1, mode="replicated", replicas=replicas, running=replicas,
                           pending_since=None, labels=labels, spec={})


@pytest.mark.parametrize(
    ("snapshot", "record", "expected"),
    [
        (snap(3, {UP_LABEL: T1}), None, (Repair.SAVE, Record(3, {UP_LABEL: T1}))),
        (snap(3, {UP_LABEL: T1, "team": "ml"}), Record(3, {UP_LABEL: T1}), (Repair.NONE, None)),
        (snap(2, {UP_LABEL: T1}), Record(3, {UP_LABEL: T1}), (Repair.SAVE, Record(2, {UP_LABEL: T1}))),
        (snap(1, {}), None, (Repair.NONE, None)),
        (snap(1, {"team": "ml"}), Record(3, {UP_LABEL: T1}), (Repair.RESTORE, Record(3, {UP_LABEL: T1}))),
        (snap(1, {}), Record(9, {UP_LABEL: T1}), (Repair.RESTORE, Record(4, {UP_LABEL: T1}))),
    ],
    ids=[
        "labels and no record: the record is written",
        "labels matching the record: nothing to do",
        "an operator's manual scale keeps the labels: the record follows it",
        "never scaled by us: nothing to do",
        "a redeploy dropped the labels: the record is restored",
        "a record above the bounds is restored clamped to max",
    ],
)
def test_plan_repair(snapshot, record, expected):
    assert plan_repair(snapshot, record, POLICY) == expected


def test_a_record_only_keeps_state_labels():
    assert record_of(2, {UP_LABEL: T1, "team": "ml"}) == Record(2, {UP_LABEL: T1})
    data = Record(2, {UP_LABEL: T1}).as_data(SERVICE, 0)
    assert Record.from_data({**data, "labels": {**data["labels"], "evil": "x"}}) == Record(2, {UP_LABEL: T1})
    with pytest.raises(ValueError):
        Record.from_data({"replicas": -1, "labels": {}})


def redeploy(fake: FakeSwarm, replicas: int = 1) -> None:
    """What `docker stack deploy` does to a scaled service: file replicas, our labels gone."""
    svc = fake.services[SERVICE]
    svc.replicas = replicas
    svc.labels = {k: v for k, v in svc.labels.items() if not k.startswith("swarm-autoscaler.")}
    svc.version += 1


async def test_a_scale_writes_the_record_and_reconcile_restores_it_after_a_redeploy(make_client, fake, clock):
    client, registry = await make_client()
    await post_json(client, payload(alert(desired="3")))
    await client.app[SCALER].drain()  # the record is written after the answer
    assert Record.from_data(fake.records[SERVICE]) == Record(3, {UP_LABEL: fake.services[SERVICE].labels[UP_LABEL]})
    labels_before = dict(fake.services[SERVICE].labels)
    redeploy(fake)
    scaler = client.app[SCALER]
    [outcome] = await scaler.reconcile()
    assert (outcome.reason, outcome.current, outcome.target) == ("restored", 1, 3)
    assert fake.services[SERVICE].replicas == 3
    assert fake.services[SERVICE].labels == labels_before
    assert registry.get_sample_value("autoscaler_decisions_total", {"service": SERVICE, "direction": "up", "reason": "restored"}) == 1
    # Restored, the cooldown holds again, and a second pass changes nothing.
    body = await (await post_json(client, payload(alert()))).json()
    assert body["decisions"][0]["reason"] == "cooldown"
    assert await scaler.reconcile() == []
    assert fake.services[SERVICE].replicas == 3


async def test_reconcile_in_dry_run_reports_and_changes_nothing(make_client, fake):
    fake.records[SERVICE] = Record(3, {UP_LABEL: T1}).as_data(SERVICE, 0)
    client, _ = await make_client(dry_run=True)
    [outcome] = await client.app[SCALER].reconcile()
    assert (outcome.reason, outcome.dry_run, outcome.as_dict()["dry_run"]) == ("restored", True, "would")
    assert fake.updates == []
    assert [c for c in fake.calls if c.startswith("write_record")] == []  # no record written either


async def test_a_failed_record_write_does_not_fail_the_scale_and_reconcile_writes_it(make_client, fake):
    client, _ = await make_client()
    original = fake.write_record

    def failing_once(name, record):
        fake.write_record = original
        raise DockerUnavailable("configs endpoint down")

    fake.write_record = failing_once
    resp = await post_json(client, payload(alert()))
    assert resp.status == 200
    await client.app[SCALER].drain()
    assert SERVICE not in fake.records
    assert await client.app[SCALER].reconcile() == []
    assert Record.from_data(fake.records[SERVICE]).replicas == 2


async def test_the_background_loop_restores_without_any_alert(make_client, fake):
    client, _ = await make_client(reconcile_interval=0.05)
    await post_json(client, payload(alert(desired="4")))
    redeploy(fake)
    for _ in range(100):
        if fake.services[SERVICE].replicas == 4:
            break
        await asyncio.sleep(0.02)
    assert fake.services[SERVICE].replicas == 4
    assert UP_LABEL in fake.services[SERVICE].labels


async def test_reconcile_survives_docker_errors_service_by_service(make_client):
    swarm = FakeSwarm(FakeService(SERVICE, replicas=1))
    swarm.failures.append(DockerUnavailable("down"))
    client, _ = await make_client(swarm=swarm)
    assert await client.app[SCALER].reconcile() == []
    assert swarm.calls == [f"inspect {SERVICE}"]
