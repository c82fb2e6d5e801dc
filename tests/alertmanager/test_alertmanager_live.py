"""The shipped alertmanager.yml on a real Alertmanager 0.25: inhibition, business hours, re-sends.

Alertmanager runs on loopback with the shipped file rendered by devkit.render:
the webhook points at a local capture standing in for the autoscaler, the token comes from
a temporary file, the timings are shortened, and the business hours are moved (time zone
and weekday only; the shipped 08:00-18:00 stay) so that "now" is inside or outside them at
any time of day. Alerts are posted with the v2 API, as Prometheus does.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml
from aiohttp import web

from devkit import Running, render_alertmanager_config, start_alertmanager
from devkit.render import (
    AUTOSCALER_RECEIVER,
    BUSINESS_HOURS_INTERVAL,
    resend_period_ms,
    route_timings,
)
from receiver.routes import in_time_intervals, matching_routes, time_intervals

pytestmark = pytest.mark.loop

REPO = Path(__file__).resolve().parents[2]
SHIPPED_ALERTMANAGER = REPO / "alertmanager" / "alertmanager.yml"


@dataclass
class Delivery:
    """One POST that reached the stand-in webhook."""

    received_at: float
    authorization: str | None
    body: dict[str, Any]


@dataclass
class WebhookCapture:
    """Stands in for the autoscaler: records every POST /webhook and answers 200."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.deliveries.append(Delivery(time.monotonic(), request.headers.get("Authorization"), body))
        return web.json_response({"ok": True})

    def alerts(self, status: str | None = None, **labels: str) -> list[tuple[Delivery, dict[str, Any]]]:
        """(delivery, alert) for every delivered alert with these labels (and status)."""
        return [
            (delivery, alert)
            for delivery in self.deliveries
            for alert in delivery.body["alerts"]
            if (status is None or alert["status"] == status)
            and all(alert["labels"].get(k) == v for k, v in labels.items())
        ]

    def summary(self) -> str:
        return "\n".join(
            f"{d.received_at:.2f} {a['status']} {a['labels']}" for d in self.deliveries for a in d.body["alerts"]
        ) or "(nothing delivered)"

    async def wait_for(self, status: str | None = None, timeout: float = 10.0, **labels: str) -> Delivery:
        """The first delivery of an alert with these labels; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.alerts(status, **labels)
            if found:
                return found[0][0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {status or ''} alert {labels} within {timeout}s; delivered:\n{self.summary()}")


@pytest.fixture
async def webhook(aiohttp_server: Callable[[web.Application], Awaitable[Any]]) -> WebhookCapture:
    capture = WebhookCapture()
    app = web.Application()
    app.router.add_post("/webhook", capture.handle)
    server = await aiohttp_server(app)
    capture.url = str(server.make_url("/webhook"))
    return capture


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="alertmanager-test-") as path:
        yield Path(path)


@dataclass(frozen=True)
class Token:
    path: Path
    value: str


@pytest.fixture
def token(workdir: Path) -> Token:
    value = secrets.token_urlsafe(16)
    path = workdir / "autoscaler_token"
    path.write_text(value + "\n", encoding="utf-8")
    return Token(path, value)


@pytest.fixture
async def alertmanager(workdir: Path) -> AsyncIterator[Callable[[str], Awaitable[Running]]]:
    """Starts Alertmanager with a configuration text; stops and reaps it after the test."""
    started: list[Running] = []

    async def start(config_text: str) -> Running:
        running = await asyncio.to_thread(start_alertmanager, config_text, workdir)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


StartAlertmanager = Callable[[str], Awaitable[Running]]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FAST = {"group_wait": "200ms", "group_interval": "500ms", "repeat_interval": "1h"}
# Ticks of 500ms: after this long, an alert that was going to be sent has been.
QUIET_SECONDS = 3.0
TIMING_SCALE = 1 / 60


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _shipped_business_hours() -> tuple[int, int]:
    config = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text(encoding="utf-8"))
    interval = next(t for t in config["time_intervals"] if t["name"] == BUSINESS_HOURS_INTERVAL)
    times = interval["time_intervals"][0]["times"][0]
    return _minutes(times["start_time"]), _minutes(times["end_time"])


def _zone_where_the_clock_shows(target_minute: int, now: datetime) -> tuple[str, datetime]:
    """The whole-hour UTC offset zone whose local time of ``now`` is nearest ``target_minute``."""
    candidates = []
    for offset in range(-12, 15):
        name = "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
        local = now.astimezone(ZoneInfo(name))
        distance = abs(local.hour * 60 + local.minute - target_minute)
        candidates.append((distance, name, local))
    _, name, local = min(candidates)
    return name, local


def render_with_business_hours(
    webhook: WebhookCapture, token: Token, *, inside: bool, **timings: Any
) -> str:
    """The shipped config with "now" in the middle of the business hours, or of the night."""
    start, end = _shipped_business_hours()
    target = (start + end) // 2 if inside else (end + (24 * 60 - end + start) // 2) % (24 * 60)
    zone, local = _zone_where_the_clock_shows(target, datetime.now(UTC))
    local_minute = local.hour * 60 + local.minute
    assert (start + 60 <= local_minute <= end - 60) == inside, f"{zone} shows {local:%H:%M}, hours {start}-{end}"
    return render_alertmanager_config(
        SHIPPED_ALERTMANAGER, webhook.url, token.path,
        time_zone=zone, business_weekdays=[WEEKDAYS[local.weekday()]], **timings,
    )


def scaling_alert(alertname: str, service: str, scale: str, *, resolved: bool = False) -> dict[str, Any]:
    now = datetime.now(UTC)
    alert: dict[str, Any] = {
        "labels": {"alertname": alertname, "service": service, "scale": scale},
        "annotations": {"summary": f"{service} test", "description": "test", "desired_replicas": "3"},
        "startsAt": (now - timedelta(minutes=5)).isoformat(),
        "generatorURL": "http://prometheus.test/graph",
    }
    if resolved:
        alert["endsAt"] = (now - timedelta(seconds=1)).isoformat()
    return alert


async def post_alerts(alertmanager: Running, *alerts: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{alertmanager.url}/api/v2/alerts", json=list(alerts)) as response:
            assert response.status == 200, await response.text()


def assert_every_delivery_is_an_authenticated_v4_autoscaler_notification(
    webhook: WebhookCapture, token: Token
) -> None:
    assert webhook.deliveries, "nothing was delivered"
    for delivery in webhook.deliveries:
        assert delivery.authorization == f"Bearer {token.value}"
        assert delivery.body["version"] == "4"
        assert delivery.body["receiver"] == AUTOSCALER_RECEIVER
        assert set(delivery.body["groupLabels"]) == {"alertname", "service"}


async def test_a_firing_scale_up_mutes_the_scale_down_of_the_same_service_until_it_resolves(
    webhook: WebhookCapture, token: Token, alertmanager: StartAlertmanager
) -> None:
    am = await alertmanager(render_with_business_hours(webhook, token, inside=False, **FAST))

    await post_alerts(am, scaling_alert("OllamaHighCPU", "ollama_ollama", "up"))
    await webhook.wait_for("firing", alertname="OllamaHighCPU", service="ollama_ollama")

    await post_alerts(
        am,
        scaling_alert("OllamaLowCPU", "ollama_ollama", "down"),
        scaling_alert("OllamaLowCPU", "other_ollama", "down"),
    )
    await webhook.wait_for("firing", alertname="OllamaLowCPU", service="other_ollama")
    await asyncio.sleep(QUIET_SECONDS)
    assert not webhook.alerts(alertname="OllamaLowCPU", service="ollama_ollama"), webhook.summary()

    await post_alerts(am, scaling_alert("OllamaHighCPU", "ollama_ollama", "up", resolved=True))
    await webhook.wait_for("resolved", alertname="OllamaHighCPU", service="ollama_ollama")
    await webhook.wait_for("firing", alertname="OllamaLowCPU", service="ollama_ollama")
    assert_every_delivery_is_an_authenticated_v4_autoscaler_notification(webhook, token)


async def test_scale_down_is_muted_during_business_hours_while_scale_up_gets_through(
    webhook: WebhookCapture, token: Token, alertmanager: StartAlertmanager
) -> None:
    am = await alertmanager(render_with_business_hours(webhook, token, inside=True, **FAST))

    await post_alerts(
        am,
        scaling_alert("OllamaLowCPU", "idle_ollama", "down"),
        scaling_alert("OllamaHighCPU", "busy_ollama", "up"),
    )
    await webhook.wait_for("firing", alertname="OllamaHighCPU", service="busy_ollama")
    await asyncio.sleep(QUIET_SECONDS)
    assert not webhook.alerts(scale="down"), webhook.summary()
    assert_every_delivery_is_an_authenticated_v4_autoscaler_notification(webhook, token)


async def test_scale_down_gets_through_outside_business_hours(
    webhook: WebhookCapture, token: Token, alertmanager: StartAlertmanager
) -> None:
    am = await alertmanager(render_with_business_hours(webhook, token, inside=False, **FAST))

    await post_alerts(am, scaling_alert("OllamaLowCPU", "idle_ollama", "down"))
    delivery = await webhook.wait_for("firing", alertname="OllamaLowCPU", service="idle_ollama")
    assert delivery.body["alerts"][0]["annotations"]["desired_replicas"] == "3"
    assert_every_delivery_is_an_authenticated_v4_autoscaler_notification(webhook, token)


def _amtool(alertmanager: Running, *args: str) -> str:
    amtool = shutil.which("amtool")
    assert amtool, "amtool is not on PATH: scripts/setup.sh installs the Debian package prometheus-alertmanager"
    result = subprocess.run(
        [amtool, f"--alertmanager.url={alertmanager.url}", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, f"amtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout.strip()


async def test_a_silence_added_with_amtool_freezes_scaling_of_a_service_until_it_is_expired(
    webhook: WebhookCapture, token: Token, alertmanager: StartAlertmanager
) -> None:
    """The commands of docs/tuning.md: `amtool silence add` freezes, `amtool silence expire` lifts."""
    am = await alertmanager(render_with_business_hours(webhook, token, inside=False, **FAST))
    silence_id = await asyncio.to_thread(
        _amtool, am, "silence", "add", 'scale=~"up|down"', "service=ollama_ollama",
        "--duration=2h", "--author=test", "--comment=freeze scaling during a model migration",
    )
    assert silence_id, "amtool printed no silence ID"

    await post_alerts(
        am,
        scaling_alert("OllamaHighCPU", "ollama_ollama", "up"),
        scaling_alert("OllamaHighCPU", "other_ollama", "up"),
    )
    await webhook.wait_for("firing", alertname="OllamaHighCPU", service="other_ollama")
    await asyncio.sleep(QUIET_SECONDS)
    assert not webhook.alerts(service="ollama_ollama"), webhook.summary()

    await asyncio.to_thread(_amtool, am, "silence", "expire", silence_id)
    await webhook.wait_for("firing", alertname="OllamaHighCPU", service="ollama_ollama")
    assert_every_delivery_is_an_authenticated_v4_autoscaler_notification(webhook, token)


def _intervals_between_sends(webhook: WebhookCapture, service: str) -> list[float]:
    times = [delivery.received_at for delivery, _ in webhook.alerts("firing", service=service)]
    return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]


async def _wait_for_sends(webhook: WebhookCapture, service: str, count: int, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(webhook.alerts("firing", service=service)) < count:
        assert asyncio.get_running_loop().time() < deadline, webhook.summary()
        await asyncio.sleep(0.05)


async def _post_one_up_and_one_down_and_collect_resends(
    webhook: WebhookCapture, alertmanager: StartAlertmanager, config_text: str, period: dict[str, float]
) -> dict[str, list[float]]:
    am = await alertmanager(config_text)
    await post_alerts(
        am,
        scaling_alert("OllamaHighCPU", "busy_ollama", "up"),
        scaling_alert("OllamaLowCPU", "idle_ollama", "down"),
    )
    await _wait_for_sends(webhook, "busy_ollama", 3, timeout=3 * period["up"] + 2)
    await _wait_for_sends(webhook, "idle_ollama", 2, timeout=2 * period["down"] + 2)
    return {"up": _intervals_between_sends(webhook, "busy_ollama"), "down": _intervals_between_sends(webhook, "idle_ollama")}


async def test_a_still_firing_alert_is_resent_at_the_first_tick_after_repeat_interval(
    webhook: WebhookCapture, token: Token, alertmanager: StartAlertmanager
) -> None:
    """The shipped timings, all divided by 60: the re-send periods the config's comment promises."""
    config_text = render_with_business_hours(webhook, token, inside=False, timing_scale=TIMING_SCALE)
    config = yaml.safe_load(config_text)
    expected = {}
    for scale in ("up", "down"):
        route = route_timings(config, {"alertname": "X", "service": "s", "scale": scale})
        expected[scale] = resend_period_ms(route["group_interval"], route["repeat_interval"]) / 1000

    intervals = await _post_one_up_and_one_down_and_collect_resends(webhook, alertmanager, config_text, expected)

    for scale in ("up", "down"):
        assert intervals[scale], webhook.summary()
        for interval in intervals[scale]:
            assert abs(interval - expected[scale]) < 0.15, (
                f"scale={scale}: re-sent after {interval:.2f}s, expected {expected[scale]:.2f}s\n{webhook.summary()}"
            )
    assert_every_delivery_is_an_authenticated_v4_autoscaler_notification(webhook, token)


async def test_a_repeat_interval_on_a_multiple_of_the_tick_resends_on_that_tick_or_the_next(
    webhook: WebhookCapture, token: Token, alertmanager: StartAlertmanager
) -> None:
    """Why the shipped repeat_interval sits half a tick off: at a multiple, either tick is possible."""
    tick, repeat = 0.5, 1.5
    config_text = render_with_business_hours(
        webhook, token, inside=False, group_wait="200ms", group_interval="500ms", repeat_interval="1500ms"
    )

    intervals = await _post_one_up_and_one_down_and_collect_resends(
        webhook, alertmanager, config_text, {"up": repeat + tick, "down": repeat + tick}
    )

    for scale in ("up", "down"):
        assert intervals[scale], webhook.summary()
        for interval in intervals[scale]:
            assert repeat - 0.15 < interval < repeat + tick + 0.15, (
                f"scale={scale}: re-sent after {interval:.2f}s, not {repeat}s or {repeat + tick}s\n{webhook.summary()}"
            )


async def test_a_child_route_does_not_inherit_its_parents_mute_time_intervals_as_routes_py_says(
    webhook: WebhookCapture, alertmanager: StartAlertmanager
) -> None:
    """The parent is muted all day long; its child for scale-down is not (dispatch/route.go), and
    receiver/routes.py, which the backtest replays, reads the tree the same way."""
    config = {
        "route": {
            "receiver": "default",
            "routes": [{
                "receiver": "hook", "matchers": ['scale=~"up|down"'], "mute_time_intervals": ["always"], **FAST,
                "routes": [{"matchers": ['scale="down"']}],
            }],
        },
        "time_intervals": [{"name": "always", "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "24:00"}]}]}],
        "receivers": [{"name": "default"}, {"name": "hook", "webhook_configs": [{"url": webhook.url}]}],
    }
    am = await alertmanager(yaml.safe_dump(config))

    await post_alerts(am, scaling_alert("OllamaHighCPU", "s", "up"), scaling_alert("OllamaLowCPU", "s", "down"))
    await webhook.wait_for("firing", alertname="OllamaLowCPU", service="s")
    await asyncio.sleep(QUIET_SECONDS)
    assert not webhook.alerts(scale="up"), webhook.summary()

    now = time.time()
    for labels, muted in (({"scale": "up"}, True), ({"scale": "down"}, False)):
        [route] = matching_routes(config, labels)
        assert in_time_intervals(now, time_intervals(config, route.mute_time_intervals)) is muted, labels
