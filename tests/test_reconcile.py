"""Restoring the last decision after a redeploy, and keeping the record current (fake swarm)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from devkit.fakes import FakeService, FakeSwarm
from receiver.app import SCALER, SWARM
from receiver.config import ServicePolicy
from receiver.domain import DockerUnavailable, ServiceSnapshot
from receiver.policy import repair
from receiver.state import PAUSE_LABEL, STATE_LABELS, Record, Repair, plan_repair, record_of

from .conftest import alert, payload, post_json

SERVICE = "ollama_ollama"
POLICY = ServicePolicy(min_replicas=1, max_replicas=4)
UP_LABEL = STATE_LABELS["up"]
T1 = "2026-12-01T10:00:00.000000Z"


def snap(replicas: int, labels: dict[str, str], service_id: str = "x", version: int = 10) -> ServiceSnapshot:
    return ServiceSnapshot(id=service_id, name=SERVICE, version=version, mode="replicated", replicas=replicas,
                           running=replicas, pending_since=None, labels=labels, spec={})


def rec(replicas: int, labels: dict[str, str], service_id: str = "x", version: int = 10) -> Record:
    return Record(replicas, labels, service_id, version)


@pytest.mark.parametrize(
    ("snapshot", "record", "expected"),
    [
        (snap(3, {UP_LABEL: T1}), None, (Repair.SAVE, rec(3, {UP_LABEL: T1}))),
        (snap(3, {UP_LABEL: T1, "team": "ml"}), rec(3, {UP_LABEL: T1}), (Repair.NONE, None)),
        (snap(2, {UP_LABEL: T1}, version=12), rec(3, {UP_LABEL: T1}), (Repair.SAVE, rec(2, {UP_LABEL: T1}, version=12))),
        (snap(1, {}), None, (Repair.NONE, None)),
        (snap(1, {"team": "ml"}), rec(3, {UP_LABEL: T1}), (Repair.RESTORE, rec(3, {UP_LABEL: T1}))),
        (snap(1, {}), rec(9, {UP_LABEL: T1}), (Repair.RESTORE, rec(4, {UP_LABEL: T1}))),
        (snap(1, {}, service_id="new"), rec(3, {UP_LABEL: T1}), (Repair.NONE, None)),
        (snap(1, {}), rec(3, {}), (Repair.NONE, None)),
    ],
    ids=[
        "labels and no record: the record is written",
        "labels matching the record: nothing to do",
        "an operator's manual scale keeps the labels: the record follows it",
        "never scaled by us: nothing to do",
        "a redeploy dropped the labels: the record is restored",
        "a record above the bounds is restored clamped to max",
        "a service re-created under the same name: the old record is not restored",
        "a record without state labels is never restored",
    ],
)
def test_plan_repair(snapshot, record, expected):
    assert plan_repair(snapshot, record, POLICY) == expected


@pytest.mark.parametrize("snapshot", [
    snap(1, {PAUSE_LABEL: "true"}),
    replace(snap(1, {}), updating=True),
    replace(snap(1, {}), mode="global"),
], ids=["paused", "in a rolling update", "global"])
def test_reconcile_leaves_alone_a_service_the_webhook_would_not_change(snapshot):
    assert repair(SERVICE, snapshot, rec(3, {UP_LABEL: T1}), POLICY, 0) == (None, None)
    assert repair(SERVICE, snap(1, {}), rec(3, {UP_LABEL: T1}), POLICY, 0)[0].reason == "restored"  # and else restores


def test_a_record_only_keeps_state_labels():
    assert record_of(snap(2, {UP_LABEL: T1, "team": "ml"})) == rec(2, {UP_LABEL: T1})
    data = rec(2, {UP_LABEL: T1}).as_data(SERVICE, 0)
    assert Record.from_data({**data, "labels": {**data["labels"], "evil": "x"}}) == rec(2, {UP_LABEL: T1})
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
    stored = Record.from_data(fake.records[SERVICE])
    assert (stored.replicas, stored.labels, stored.service_id) == (3, {UP_LABEL: fake.services[SERVICE].labels[UP_LABEL]}, f"id-{SERVICE}")
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
    fake.records[SERVICE] = Record(3, {UP_LABEL: T1}, f"id-{SERVICE}", 1).as_data(SERVICE, 0)
    client, _ = await make_client(dry_run=True)
    [outcome] = await client.app[SCALER].reconcile()
    assert (outcome.reason, outcome.dry_run, outcome.as_dict()["dry_run"]) == ("restored", True, "would")
    assert fake.updates == []
    assert [c for c in fake.calls if c.startswith("write_record")] == []  # no record written either


async def test_a_failed_record_write_does_not_fail_the_scale_and_reconcile_writes_it(make_client, fake):
    client, _ = await make_client()
    original = fake.write_record

    def failing_once(name, record, version):
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


# --- what a real deployment does to the records (issue: correct in a real deployment) ---------


async def test_an_alert_after_a_redeploy_restores_the_record_first_instead_of_stepping_from_the_reset(make_client, fake, clock):
    client, _ = await make_client()
    await post_json(client, payload(alert(desired="3")))
    await client.app[SCALER].drain()
    labels_before = dict(fake.services[SERVICE].labels)
    redeploy(fake)  # replicas back to 1, our labels gone; no reconcile has run yet
    clock.advance(30)  # inside the 2m up-cooldown
    decision = (await (await post_json(client, payload(alert()))).json())["decisions"][0]
    assert (decision["reason"], decision["from"], decision["to"]) == ("restored", 1, 3)
    assert fake.services[SERVICE].replicas == 3
    assert fake.services[SERVICE].labels == labels_before  # the cooldown holds again
    await client.app[SCALER].drain()
    assert Record.from_data(fake.records[SERVICE]).replicas == 3  # the decision of 3 is kept, not overwritten by 2


async def test_a_paused_service_reset_by_a_redeploy_is_not_restored(make_client, fake):
    client, _ = await make_client()
    await post_json(client, payload(alert(desired="3")))
    await client.app[SCALER].drain()
    redeploy(fake)
    fake.services[SERVICE].labels[PAUSE_LABEL] = "true"
    assert await client.app[SCALER].reconcile() == []
    assert fake.services[SERVICE].replicas == 1
    assert fake.updates == ["update ollama_ollama 3"]


async def test_a_removed_services_records_go_and_a_service_recreated_under_its_name_starts_afresh(make_client, fake):
    client, _ = await make_client()
    await post_json(client, payload(alert(desired="3")))
    await client.app[SCALER].drain()
    assert SERVICE in fake.records
    del fake.services[SERVICE]  # docker service rm
    assert await client.app[SCALER].reconcile() == []
    assert SERVICE not in fake.records  # within one reconcile interval
    # Re-created under the same name (a new ID), before or after a record could be read:
    fake.records[SERVICE] = Record(3, {UP_LABEL: T1}, f"id-{SERVICE}", 5).as_data(SERVICE, 0)
    fake.services[SERVICE] = FakeService(SERVICE, replicas=1, id="a-new-id")
    assert await client.app[SCALER].reconcile() == []
    assert fake.services[SERVICE].replicas == 1
    decision = (await (await post_json(client, payload(alert()))).json())["decisions"][0]
    assert (decision["reason"], decision["to"]) == ("scaled_up", 2)


async def test_a_reconcile_that_read_before_another_receivers_scale_does_not_overwrite_its_newer_record(
        make_client, fake, clock):
    first, _ = await make_client()
    second, _ = await make_client()  # another receiver on another manager
    await post_json(first, payload(alert(desired="2")))
    await first.app[SCALER].drain()
    fake.records.clear()
    fake.record_versions.clear()  # say the first record write was lost: the reconcile will save one
    clock.advance(200)  # past the up-cooldown
    scaler = first.app[SCALER]
    read_record = scaler.swarm.read_record

    async def another_receiver_scales_meanwhile(name):
        # The reconcile has read the service (2 replicas); now the second receiver scales it to 3.
        answer = await (await post_json(second, payload(alert(desired="3")))).json()
        assert answer["decisions"][0]["reason"] == "scaled_up"
        await second.app[SCALER].drain()
        return await read_record(name)

    scaler.swarm.read_record = another_receiver_scales_meanwhile
    assert await scaler.reconcile() == []
    assert fake.services[SERVICE].replicas == 3
    assert Record.from_data(fake.records[SERVICE]).replicas == 3  # the stale save of 2 was refused as older


async def test_a_dry_run_reconcile_reports_a_would_be_restore_once_not_at_every_sweep(make_client, fake):
    fake.records[SERVICE] = Record(3, {UP_LABEL: T1}, f"id-{SERVICE}", 1).as_data(SERVICE, 0)
    client, registry = await make_client(dry_run=True)
    for _ in range(4):
        await client.app[SCALER].reconcile()
    assert registry.get_sample_value("autoscaler_decisions_total",
                                     {"service": SERVICE, "direction": "up", "reason": "restored"}) == 1


def answers_written(monkeypatch) -> list[str]:
    """A list that gets "answer written" each time a response's end is written."""
    from aiohttp import web

    order: list[str] = []
    write_eof = web.StreamResponse.write_eof

    async def answered(self, data=b""):
        order.append("answer written")
        await write_eof(self, data)

    monkeypatch.setattr(web.StreamResponse, "write_eof", answered)
    return order


async def test_the_record_write_starts_only_once_the_webhook_answer_is_written(make_client, fake, monkeypatch):
    order = answers_written(monkeypatch)
    client, _ = await make_client()
    swarm = client.app[SWARM]
    write_record = swarm.write_record

    async def recorded(name, record, version):  # on the loop, where the answer is written too
        order.append("record write")
        return await write_record(name, record, version)

    swarm.write_record = recorded
    response = await post_json(client, payload(alert(desired="3")))
    assert (await response.json())["decisions"][0]["reason"] == "scaled_up"
    await client.app[SCALER].drain()
    assert order[:2] == ["answer written", "record write"], order
    assert Record.from_data(fake.records[SERVICE]).replicas == 3


async def test_the_decision_is_logged_and_counted_once_the_webhook_answer_is_written_not_before(make_client, monkeypatch):
    import logging

    order = answers_written(monkeypatch)

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if '"event": "decision"' in record.getMessage():
                counted = registry.get_sample_value("autoscaler_decisions_total",
                                                    {"service": SERVICE, "direction": "up", "reason": "scaled_up"})
                order.append(f"decision logged, counted {counted}")

    client, registry = await make_client()
    seen, logger = Seen(), logging.getLogger("receiver.decisions")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(seen)
    try:
        response = await post_json(client, payload(alert(desired="3")))
        assert (await response.json())["decisions"][0]["reason"] == "scaled_up"
        # in the answer at once: what /status shows, and the answer itself
        assert client.app[SCALER].last_decisions[SERVICE].reason == "scaled_up"
    finally:
        logger.removeHandler(seen)
        logger.setLevel(level)
        await client.app[SCALER].drain()
    assert order == ["answer written", "decision logged, counted 1.0"], order


async def test_of_two_services_in_one_notification_the_first_is_counted_before_the_second_is_decided(make_client, fake):
    """Not held for the whole answer: meanwhile another path may scale the first service, and its
    counts and log line would then come out of order."""
    import threading

    from .conftest import SERVICE_CONFIG

    fake.services["other"] = FakeService("other", replicas=1)
    reached, release = threading.Event(), threading.Event()

    def block() -> None:  # the second update (the fake's hook runs once per arming)
        reached.set()
        release.wait(5)

    fake.before_update = lambda: setattr(fake, "before_update", block)
    client, registry = await make_client(services={SERVICE: dict(SERVICE_CONFIG), "other": dict(SERVICE_CONFIG)})

    def counted(service: str) -> float | None:
        return registry.get_sample_value("autoscaler_decisions_total",
                                         {"service": service, "direction": "up", "reason": "scaled_up"})

    answer = asyncio.ensure_future(post_json(client, payload(alert(SERVICE), alert("other"))))
    try:
        for _ in range(200):
            if reached.is_set():
                break
            await asyncio.sleep(0.01)
        assert reached.is_set(), "the second service's update never started"
        assert (counted(SERVICE), counted("other")) == (1.0, None)
    finally:
        release.set()
    response = await answer
    assert [d["reason"] for d in (await response.json())["decisions"]] == ["scaled_up", "scaled_up"]
    assert (counted(SERVICE), counted("other")) == (1.0, 1.0)
    await client.app[SCALER].drain()


async def test_work_held_while_answering_starts_however_the_answer_ends(make_scaler, fake):
    scaler, _ = make_scaler()
    started: list[str] = []

    async def work(what: str) -> None:
        started.append(what)

    with pytest.raises(RuntimeError), scaler.answering():
        scaler._in_background(work("held"))
        await asyncio.sleep(0.01)
        assert started == []  # not while answering
        raise RuntimeError("the handler failed (or was cancelled) before its answer")
    await scaler.drain()
    assert started == ["held"]  # started when it was left, not lost
    scaler._in_background(work("outside"))  # outside any answer: at once
    await scaler.drain()
    assert started == ["held", "outside"]


async def test_a_sender_that_hangs_up_mid_scale_leaves_the_scale_recorded_and_no_500_counted(fake, clock):
    import time

    import aiohttp
    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from receiver.app import create_app

    from .conftest import make_config, sample

    set_replicas = fake.set_replicas

    def slow(*args, **kwargs):  # the engine takes its time: the sender gives up first
        time.sleep(0.5)
        return set_replicas(*args, **kwargs)

    fake.set_replicas = slow
    registry = CollectorRegistry()
    app = create_app(make_config(), fake, registry=registry, clock=clock)
    runner = web.AppRunner(app)  # as `autoscaler serve` runs it: a handler outlives its sender
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(asyncio.TimeoutError):
                await session.post(f"http://127.0.0.1:{port}/webhook", json=payload(alert(desired="3")),
                                   timeout=aiohttp.ClientTimeout(total=0.1))
        for _ in range(100):  # the handler goes on without its sender
            if sample(registry, "autoscaler_webhook_requests_total", code="200"):
                break
            await asyncio.sleep(0.02)
        await app[SCALER].drain()
        assert fake.services[SERVICE].replicas == 3
        assert Record.from_data(fake.records[SERVICE]).replicas == 3
        assert sample(registry, "autoscaler_webhook_requests_total", code="200") == 1
        assert sample(registry, "autoscaler_webhook_requests_total", code="500") == 0
    finally:
        await runner.cleanup()
