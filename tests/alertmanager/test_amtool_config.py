"""The shipped alertmanager.yml passes amtool and routes each kind of alert where it must.

Also checks, without a running Alertmanager, the two promises the file makes on paper:
rendering it for tests changes only the webhook, the timings and the business hours, and
its re-send periods land just after the receiver's cooldowns (the formula used here is
measured on a real Alertmanager in test_alertmanager_live.py).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.render import (
    AUTOSCALER_RECEIVER,
    BUSINESS_HOURS_INTERVAL,
    parse_duration_ms,
    render_alertmanager_config,
    resend_period_ms,
    route_timings,
)
from receiver.config import ServicePolicy

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "alertmanager" / "alertmanager.yml"
# The receiver's default cooldowns: a re-send should come just after them, never sooner.
SCALE_UP_COOLDOWN_MS = round(ServicePolicy.model_fields["scale_up_cooldown"].default * 1000)
SCALE_DOWN_COOLDOWN_MS = round(ServicePolicy.model_fields["scale_down_cooldown"].default * 1000)


def _shipped() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def _default_receiver() -> str:
    return str(_shipped()["route"]["receiver"])


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    amtool = shutil.which("amtool")
    assert amtool, "amtool is not on PATH: scripts/setup.sh installs the Debian package prometheus-alertmanager"
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=60, check=False)


def test_amtool_check_config_accepts_the_shipped_configuration() -> None:
    result = _amtool("check-config", str(SHIPPED))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_config_accepts_the_configuration_rendered_for_tests() -> None:
    rendered = render_alertmanager_config(
        SHIPPED, "http://127.0.0.1:9/webhook", "/tmp/token", timing_scale=1 / 60, time_zone="Etc/GMT-5",
        business_weekdays=["sunday"],
    )
    with tempfile.TemporaryDirectory(prefix="am-config-") as tmp:
        path = Path(tmp) / "alertmanager.yml"
        path.write_text(rendered, encoding="utf-8")
        result = _amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr + rendered


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        pytest.param(["alertname=OllamaHighCPU", "service=ollama_ollama", "scale=up"], AUTOSCALER_RECEIVER, id="up"),
        pytest.param(["alertname=OllamaLowCPU", "service=ollama_ollama", "scale=down"], AUTOSCALER_RECEIVER, id="down"),
        pytest.param(["alertname=NodeDown", "instance=node1:9100", "severity=critical"], None, id="unrelated"),
        pytest.param(
            ["alertname=OllamaCPUSignalMissing", "service=ollama_ollama", "severity=warning"], None, id="signal-missing"
        ),
        pytest.param(["alertname=OllamaHighCPU", "service=ollama_ollama", "scale=sideways"], None, id="unknown-scale"),
    ],
)
def test_amtool_routes_each_label_set_to_its_receiver(labels: list[str], receiver: str | None) -> None:
    expected = receiver or _default_receiver()
    result = _amtool(
        "config", "routes", "test", f"--config.file={SHIPPED}", f"--verify.receivers={expected}", *labels
    )
    assert result.returncode == 0, f"{labels}: {result.stdout}{result.stderr}"
    assert result.stdout.strip() == expected


def test_the_default_receiver_is_not_the_autoscaler() -> None:
    assert _default_receiver() != AUTOSCALER_RECEIVER


def test_rendering_changes_only_the_webhook_the_timings_and_the_business_hours() -> None:
    shipped = _shipped()
    rendered = yaml.safe_load(
        render_alertmanager_config(
            SHIPPED, "http://127.0.0.1:9/webhook", "/tmp/token", group_wait="1s", group_interval="1s",
            repeat_interval="1h", time_zone="Etc/GMT-5", business_weekdays=["sunday"],
            business_times=("01:00", "02:00"),
        )
    )
    webhook = next(r for r in rendered["receivers"] if r["name"] == AUTOSCALER_RECEIVER)["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:9/webhook"
    assert webhook["http_config"]["authorization"]["credentials_file"] == "/tmp/token"
    assert webhook["send_resolved"] is True
    interval = next(t for t in rendered["time_intervals"] if t["name"] == BUSINESS_HOURS_INTERVAL)["time_intervals"][0]
    assert interval == {
        "weekdays": ["sunday"], "times": [{"start_time": "01:00", "end_time": "02:00"}], "location": "Etc/GMT-5",
    }

    for config in (shipped, rendered):
        for receiver in config["receivers"]:
            for webhook in receiver.get("webhook_configs", []):
                webhook.pop("url")
                webhook["http_config"]["authorization"].pop("credentials_file")
        config.pop("time_intervals")
        stack = [config["route"]]
        while stack:
            route = stack.pop()
            for key in ("group_wait", "group_interval", "repeat_interval"):
                route.pop(key, None)
            stack.extend(route.get("routes", []))
    assert rendered == shipped


def test_the_shipped_webhook_reads_its_bearer_token_from_a_file_and_sends_resolutions() -> None:
    receiver = next(r for r in _shipped()["receivers"] if r["name"] == AUTOSCALER_RECEIVER)
    for webhook in receiver["webhook_configs"]:
        authorization = webhook["http_config"]["authorization"]
        assert authorization.get("type", "Bearer") == "Bearer"
        assert authorization["credentials_file"], "the token must come from a file (a Swarm secret)"
        assert "credentials" not in authorization, "no inline token in the shipped file"
        assert webhook.get("send_resolved", True) is True


@pytest.mark.parametrize(
    ("scale", "cooldown_ms"), [("up", SCALE_UP_COOLDOWN_MS), ("down", SCALE_DOWN_COOLDOWN_MS)]
)
def test_a_still_firing_alert_is_resent_within_one_tick_after_the_receivers_cooldown(
    scale: str, cooldown_ms: int
) -> None:
    timings = route_timings(_shipped(), {"alertname": "OllamaHighCPU", "service": "ollama_ollama", "scale": scale})
    tick = parse_duration_ms(timings["group_interval"])
    period = resend_period_ms(timings["group_interval"], timings["repeat_interval"])
    assert cooldown_ms < period <= cooldown_ms + tick, (
        f"scale={scale}: re-sent every {period} ms, cooldown {cooldown_ms} ms, tick {tick} ms"
    )
