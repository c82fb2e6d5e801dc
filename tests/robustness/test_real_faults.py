"""Duplicates, two receivers, a Docker outage and concurrent operators, on the real swarm."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from ..conftest import alert, payload, report
from ..processes import ReceiverProcess, metric_value, post_many, reasons
from ..sockproxy import SocketProxy
from ..swarm.conftest import spec_of

pytestmark = pytest.mark.swarm


def config_for(name: str, **policy) -> dict:
    return {
        "services": {name: {"min_replicas": 1, "max_replicas": 6, "scale_up_cooldown": "10m", "scale_down_cooldown": "10m", **policy}},
        "docker": {"timeout": "20s"},
        "reconcile_interval": 0,
    }


async def test_a_storm_of_100_identical_notifications_gives_exactly_one_step(tmp_path, docker_client, make_service):
    service = make_service(1)
    with ReceiverProcess(tmp_path, config_for(service.name)) as receiver:
        answers = await post_many([receiver], payload(alert(service.name, "up")), 100)
    counts = reasons(answers)
    assert counts == {"scaled_up": 1, "cooldown": 99}
    assert spec_of(docker_client, service.name)["Mode"]["Replicated"]["Replicas"] == 2
    report(f"duplicate storm: 100 concurrent identical notifications -> {counts}, replicas 1 -> 2")


async def test_two_receivers_fed_the_same_notifications_at_once_give_exactly_one_step(tmp_path, docker_client, make_service):
    service = make_service(1)
    with ReceiverProcess(tmp_path / "a", config_for(service.name)) as a, ReceiverProcess(tmp_path / "b", config_for(service.name)) as b:
        answers = await post_many([a, b], payload(alert(service.name, "up")), 50)
        log_a, log_b = a.stop(), b.stop()
    counts = reasons(answers)
    assert counts == {"scaled_up": 1, "cooldown": 99}
    assert spec_of(docker_client, service.name)["Mode"]["Replicated"]["Replicas"] == 2
    conflicts = (log_a + log_b).count('"update_conflict"')
    report(f"two receivers (HA pair): 2 x 50 concurrent notifications -> {counts}, {conflicts} version conflicts re-read, replicas 1 -> 2")


async def test_a_docker_outage_answers_503_and_not_ready_and_the_resent_notification_scales_once(tmp_path, docker_client, make_service):
    service = make_service(1)
    proxy = SocketProxy()
    try:
        config = {**config_for(service.name), "docker": {"host": proxy.url, "timeout": "3s"}}
        with ReceiverProcess(tmp_path, config) as receiver:
            proxy.cut()
            status, body = receiver.post(payload(alert(service.name, "up")))
            assert status == 503
            assert body["decisions"][0]["reason"] == "docker_error"
            assert body["decisions"][0]["details"]["kind"] in ("unavailable", "timeout")
            assert receiver.status_of("/-/ready") == 503
            assert receiver.status_of("/-/healthy") == 200
            metrics = receiver.metrics()
            assert metric_value(metrics, "autoscaler_docker_errors_total", operation="inspect") >= 1
            assert metric_value(metrics, "autoscaler_webhook_requests_total", code="503") == 1
            assert spec_of(docker_client, service.name)["Mode"]["Replicated"]["Replicas"] == 1

            proxy.restore()
            assert receiver.status_of("/-/ready") == 200
            first = receiver.post(payload(alert(service.name, "up")))  # Alertmanager's retry
            again = receiver.post(payload(alert(service.name, "up")))  # and a duplicate of it
        assert (first[0], first[1]["decisions"][0]["reason"]) == (200, "scaled_up")
        assert again[1]["decisions"][0]["reason"] == "cooldown"
        assert spec_of(docker_client, service.name)["Mode"]["Replicated"]["Replicas"] == 2
    finally:
        proxy.close()


async def test_operators_changing_the_service_while_it_scales_never_lose_a_change(tmp_path, docker_client, make_service):
    service = make_service(1)
    ops = 12
    done: list[str] = []

    def operator() -> None:
        for i in range(ops):
            args = ["--label-add", f"op{i}=yes"] if i % 4 else ["--env-add", f"OP{i}=yes"]
            for _ in range(20):  # the CLI does not retry on a conflict: the operator does
                if subprocess.run(["docker", "service", "update", "--detach", *args, service.name], capture_output=True).returncode == 0:
                    done.append(args[1])
                    break
                time.sleep(0.1)

    config = config_for(service.name, scale_up_cooldown=0, scale_down_cooldown=0, convergence_wait=0, max_replicas=3)
    with ReceiverProcess(tmp_path, config) as receiver:
        thread = threading.Thread(target=operator)
        thread.start()
        answers = []
        for i in range(16):
            answers.append(receiver.post(payload(alert(service.name, "up" if i % 4 < 2 else "down"))))
        thread.join(120)
    assert len(done) == ops
    assert all(status == 200 for status, _ in answers), answers
    spec = spec_of(docker_client, service.name)
    for i in range(ops):
        if i % 4:
            assert spec["Labels"][f"op{i}"] == "yes"
        else:
            assert f"OP{i}=yes" in spec["TaskTemplate"]["ContainerSpec"]["Env"]
    moves = sum(1 for _, body in answers if body["decisions"][0]["reason"] in ("scaled_up", "scaled_down"))
    assert moves > 0
    report(f"concurrent operators: {ops} operator updates during 16 scale notifications ({moves} moves), 0 changes lost")
