"""Which silences freeze a service, and which `autoscaler unfreeze` lifts, on a real Alertmanager 0.25.

Silences are made through Alertmanager's API as an operator's amtool or UI would; the receiver
is the production app on a fake swarm, polling that Alertmanager.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devkit import Running
from devkit.loop import SHIPPED_ALERTMANAGER, business_hours
from devkit.procs import start_alertmanager
from devkit.render import render_alertmanager_config

from ..conftest import SERVICE, sample

pytestmark = pytest.mark.loop


@pytest.fixture
def am(tmp_path) -> Iterator[Running]:
    token = tmp_path / "token"
    token.write_text("x\n")
    weekdays, times = business_hours(datetime.now(UTC), inside=False)
    with start_alertmanager(render_alertmanager_config(
            SHIPPED_ALERTMANAGER, "http://127.0.0.1:9/webhook", token, time_zone="UTC",
            business_weekdays=weekdays, business_times=times), tmp_path) as running:
        yield running


def add_silence(am: Running, comment: str, **matchers: str) -> str:
    """A silence made as an operator would: ``name="value"``, or ``name="~regex"`` for a regex."""
    now = datetime.now(UTC)
    body = {
        "matchers": [{"name": n, "value": v.removeprefix("~"), "isRegex": v.startswith("~"), "isEqual": True}
                     for n, v in matchers.items()],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "an operator", "comment": comment,
    }
    req = urllib.request.Request(f"{am.url}/api/v2/silences", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["silenceID"])


def active_silences(am: Running) -> set[str]:
    with urllib.request.urlopen(f"{am.url}/api/v2/silences", timeout=10) as resp:
        return {s["id"] for s in json.loads(resp.read()) if s["status"]["state"] == "active"}


def autoscaler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "receiver", *args], capture_output=True, text=True, timeout=60)


def human_only_and_maintenance_silences(am: Running) -> set[str]:
    """Two silences that name the service yet mute none of its scaling alerts."""
    return {
        add_silence(am, "a known signal gap", alertname="OllamaCPUSignalMissing", service=SERVICE),
        add_silence(am, "maintenance: pages off", service="~.+", severity="~critical|warning"),
    }


def test_unfreeze_expires_the_freeze_it_made_and_leaves_silences_on_other_alerts_and_labels(am):
    others = human_only_and_maintenance_silences(am)
    frozen = autoscaler("freeze", SERVICE, "--for", "1h", "--comment", "migration", "--alertmanager", am.url)
    assert frozen.returncode == 0, frozen.stderr

    result = autoscaler("unfreeze", SERVICE, "--alertmanager", am.url)

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("expired silence") == 1, result.stdout
    assert "'migration'" in result.stdout
    assert active_silences(am) == others


def test_unfreeze_names_the_silences_it_did_not_make_that_still_freeze_the_service_and_exits_non_zero(am):
    cpu = add_silence(am, "hold CPU scale-ups", alertname="OllamaHighCPU", service=SERVICE)
    assert autoscaler("freeze", SERVICE, "--for", "1h", "--comment", "migration", "--alertmanager", am.url).returncode == 0

    result = autoscaler("unfreeze", SERVICE, "--alertmanager", am.url)

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.count("expired silence") == 1, result.stdout
    assert f"{SERVICE} is still frozen by 1 silence(s) that autoscaler freeze did not make" in result.stderr
    assert f'{cpu} {{alertname="OllamaHighCPU", service="{SERVICE}"}}' in result.stderr
    assert "'hold CPU scale-ups'" in result.stderr
    assert active_silences(am) == {cpu}


async def frozen_when_polled(client: Any, registry: Any) -> Any:
    """/status's ``frozen`` of the service, after a poll that began once the caller's silences existed."""
    polls = sample(registry, "autoscaler_alertmanager_polls_total", result="ok")
    deadline = time.monotonic() + 10
    while sample(registry, "autoscaler_alertmanager_polls_total", result="ok") < polls + 2:
        assert time.monotonic() < deadline, "the receiver did not poll Alertmanager twice within 10s"
        await asyncio.sleep(0.05)
    resp = await client.get("/status")
    assert resp.status == 200, await resp.text()
    [entry] = (await resp.json())["services"]
    return entry["frozen"]


async def test_status_reports_as_frozen_only_silences_that_mute_a_scaling_alert_of_the_service(am, make_client):
    client, registry = await make_client(alertmanager={"url": am.url, "poll_interval": 0.1})
    human_only_and_maintenance_silences(am)

    assert await frozen_when_polled(client, registry) is None
    assert sample(registry, "autoscaler_frozen", service=SERVICE) == 0

    down = add_silence(am, "keep capacity", alertname="OllamaIdle", service=SERVICE)
    frozen = await frozen_when_polled(client, registry)
    assert (frozen["directions"], frozen["silences"]) == (["down"], [down])
    assert sample(registry, "autoscaler_frozen", service=SERVICE) == 1


@pytest.mark.parametrize(
    ("pattern", "holds"),
    [(r"\pL+_\pL+", True), (r"(?U)ollama_.+", True), (r"\Qollama_ollama\E", True), (r"\Qollama_.*\E", False)],
    ids=["unicode class", "ungreedy flag", "quoted literal", "quoted metacharacters"],
)
async def test_a_silence_in_re2_syntax_that_python_re_lacks_is_read_and_judged_as_alertmanager_does(
        am, make_client, pattern, holds):
    client, registry = await make_client(alertmanager={"url": am.url, "poll_interval": 0.1})
    silence = add_silence(am, "RE2", service="~" + pattern, scale="up")

    frozen = await frozen_when_polled(client, registry)

    assert frozen == ({"directions": ["up"], "silences": [silence], "until": frozen["until"], "comment": "RE2",
                       "created_by": "an operator"} if holds else None)
    assert sample(registry, "autoscaler_background_errors_total", job="silences") == 0


def test_unfreeze_with_a_configuration_judges_by_its_scaling_alerts(am, tmp_path):
    """Where the scaling alerts are only the GPU ones, a silence on OllamaHighCPU freezes nothing."""
    add_silence(am, "hold CPU scale-ups", alertname="OllamaHighCPU", service=SERVICE)
    config = tmp_path / "config.yml"
    config.write_text("alertmanager:\n  scaling_alerts:\n    up: [OllamaHighGPU]\n    down: [OllamaLowGPU]\n")

    shipped = autoscaler("unfreeze", SERVICE, "--alertmanager", am.url)
    gpu_only = autoscaler("unfreeze", SERVICE, "--alertmanager", am.url, "--config", str(config))

    assert shipped.returncode == 1, shipped.stdout + shipped.stderr
    assert (gpu_only.returncode, gpu_only.stdout.strip()) == (0, f"{SERVICE} was not frozen"), gpu_only.stderr
