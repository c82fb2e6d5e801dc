"""`autoscaler status`, `freeze` and `unfreeze` against a real Alertmanager, receiver and swarm."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from devkit.loop import SHIPPED_ALERTMANAGER, business_hours
from devkit.procs import start_alertmanager
from devkit.receiverproc import ReceiverProcess, metric_value
from devkit.render import render_alertmanager_config
from devkit.waiting import wait_for

from ..swarm.conftest import spec_of

pytestmark = [pytest.mark.swarm, pytest.mark.loop]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "receiver", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def post_alert(alertmanager_url: str, service: str) -> None:
    now = datetime.now(UTC)
    alerts = [{
        "labels": {"alertname": "OllamaHighCPU", "service": service, "scale": "up"},
        "annotations": {"summary": "busy"},
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }]
    req = urllib.request.Request(f"{alertmanager_url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def frozen_in_status(receiver: ReceiverProcess, service: str):
    [entry] = [s for s in receiver.get_json("/status")["services"] if s["service"] == service]
    return entry["frozen"]


def test_a_frozen_service_shows_as_frozen_gets_no_scaling_and_scales_once_unfrozen(tmp_path, docker_client, make_service):
    service = make_service(1).name
    receiver = ReceiverProcess(tmp_path / "receiver", {
        "services": {service: {"min_replicas": 1, "max_replicas": 4}},
        "reconcile_interval": 0,
        "alertmanager": {"url": "http://127.0.0.1:1", "poll_interval": 0.5},  # replaced below
    })
    try:
        weekdays, times = business_hours(datetime.now(UTC), inside=False)
        am_dir = tmp_path / "am"
        am_dir.mkdir()
        am = start_alertmanager(render_alertmanager_config(
            SHIPPED_ALERTMANAGER, receiver.webhook_url, receiver.token_file, timing_scale=1 / 30,
            time_zone="UTC", business_weekdays=weekdays, business_times=times), am_dir)
        try:
            # The receiver learns where Alertmanager is (its port is only known now).
            receiver.stop()
            config = receiver.config_path.read_text().replace("http://127.0.0.1:1", am.url)
            receiver.config_path.write_text(config)
            receiver.start()

            out = cli("freeze", service, "--for", "10m", "--comment", "model migration", "--alertmanager", am.url).stdout
            assert f"froze {service} until" in out
            wait_for(lambda: frozen_in_status(receiver, service) is not None, 15, "the receiver to see the freeze")
            assert frozen_in_status(receiver, service)["comment"] == "model migration"
            assert metric_value(receiver.metrics(), "autoscaler_frozen", service=service) == 1
            table = cli("status", "--url", receiver.url).stdout
            assert service in table and "until" in table and "[down/up]" in table

            post_alert(am.url, service)
            time.sleep(5)  # group_wait 0.33s and several 1s ticks at this time scale
            assert spec_of(docker_client, service)["Mode"]["Replicated"]["Replicas"] == 1
            assert receiver.decisions() == []

            out = cli("unfreeze", service, "--alertmanager", am.url).stdout
            assert "expired silence" in out
            wait_for(lambda: frozen_in_status(receiver, service) is None, 15, "the receiver to see the freeze lifted")
            assert metric_value(receiver.metrics(), "autoscaler_frozen", service=service) == 0
            table = cli("status", "--url", receiver.url).stdout
            row = next(line for line in table.splitlines() if line.startswith(service))
            assert row.rstrip().endswith("no")
            wait_for(lambda: spec_of(docker_client, service)["Mode"]["Replicated"]["Replicas"] == 2, 30,
                     "the held alert to scale once unfrozen")
            # the decision's log line follows the update (it is written once the webhook is answered)
            wait_for(lambda: receiver.decisions() != [], 10, "the decision's log line")
            assert [d["reason"] for d in receiver.decisions()] == ["scaled_up"]
        finally:
            am.stop()
    finally:
        receiver.close()


def test_unfreezing_a_service_that_is_not_frozen_says_so(tmp_path):
    am_dir = tmp_path / "am"
    am_dir.mkdir()
    weekdays, times = business_hours(datetime.now(UTC), inside=False)
    token = tmp_path / "token"
    token.write_text("x\n")
    with start_alertmanager(render_alertmanager_config(
            SHIPPED_ALERTMANAGER, "http://127.0.0.1:9/webhook", token, time_zone="UTC",
            business_weekdays=weekdays, business_times=times), am_dir) as am:
        out = cli("unfreeze", "nothing_here", "--alertmanager", am.url).stdout
    assert "nothing_here was not frozen" in out
