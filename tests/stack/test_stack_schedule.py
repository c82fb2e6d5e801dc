"""A scheduled minimum on the stack deployed as a user would, in real time: a window a few
minutes after the deployment raises Ollama `lead` before it starts, holds it during the window,
and the live rules bring it down after it (OllamaUnused: no request comes; its target of 0 lands
on the configured minimum, 1).

Changed from the shipped files, as an operator tuning for a test would: the window itself
(minutes from now, in UTC), OllamaUnused's `for` 30m -> 1m, scale_down_cooldown 5m -> 30s, the
scale-down route not muted in business hours, Ollama's CPU reservation small enough for two
replicas on this machine.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ..conftest import report
from .deployment import Stack, StackEdits, scale_downs_unmuted, wait_for

pytestmark = pytest.mark.swarm

LEAD = timedelta(minutes=2)
LENGTH = timedelta(minutes=2)
WINDOW: dict[str, datetime] = {}  # set when the stack is deployed


def _receiver(config: dict[str, Any]) -> None:
    # The window starts 4 to 5 minutes after the deployment, on a minute (Alertmanager's HH:MM).
    start = (datetime.now(UTC) + timedelta(minutes=5)).replace(second=0, microsecond=0)
    end = min(start + LENGTH, start.replace(hour=23, minute=59))
    WINDOW.update(start=start, end=end)
    (policy,) = config["services"].values()
    policy.update(scale_down_cooldown="30s", schedules=[{
        "name": "test-window", "min_replicas": 2, "lead": f"{int(LEAD.total_seconds())}s",
        "time_intervals": [{"times": [{"start_time": start.strftime("%H:%M"), "end_time": end.strftime("%H:%M")}],
                            "location": "UTC"}],
    }])
    config["schedule_interval"] = "10s"


STACK_EDITS = StackEdits(
    receiver=_receiver,
    alertmanager=scale_downs_unmuted,
    rules=(("for: 30m", "for: 1m"),),
    compose='version: "3.8"\nservices:\n  ollama:\n    deploy:\n      resources:\n        reservations:\n'
            '          cpus: "0.1"\n',
)


def replicas(stack: Stack) -> int:
    return int(stack.service("ollama").attrs["Spec"]["Mode"]["Replicated"]["Replicas"])


def entry(stack: Stack) -> dict[str, Any]:
    status, body = stack.http("autoscaler", "GET", "http://127.0.0.1:8080/status")
    assert status == 200, body
    return next(e for e in json.loads(body)["services"] if e["service"] == stack.ollama)


def until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def test_a_window_raises_ollama_lead_before_it_starts_and_the_live_rules_bring_it_down_after(stack: Stack):
    start, end = WINDOW["start"], WINDOW["end"]
    raise_at = start - LEAD
    assert datetime.now(UTC) < raise_at - timedelta(seconds=20), "the deployment took longer than the window allows"
    until(raise_at - timedelta(seconds=15))
    assert replicas(stack) == 1, "raised before the lead"
    assert entry(stack)["effective_min_replicas"] == 1

    wait_for(lambda: replicas(stack) == 2, 90, "the raise to the window's minimum", 1)
    raised = datetime.now(UTC)
    info = entry(stack)
    assert info["last_decision"]["reason"] == "scheduled_minimum", info["last_decision"]
    assert info["effective_min_replicas"] == 2
    assert timedelta(0) <= raised - raise_at < timedelta(seconds=45), (raised, raise_at)

    # During the window OllamaUnused fires (no request) and the receiver holds the minimum.
    until(end - timedelta(seconds=20))
    assert replicas(stack) == 2, "fell during the window"
    wait_for(lambda: replicas(stack) == 1, 300, "the live rules to bring it down after the window", 2)
    fell = datetime.now(UTC)
    info = entry(stack)
    assert (info["last_decision"]["reason"], info["last_decision"]["to"]) == ("clamped_to_min", 1), info["last_decision"]
    line = (f"scheduled minimum (window {start:%H:%M}-{end:%H:%M} UTC, lead {LEAD.seconds // 60}m, min 2): raised "
            f"{(raised - raise_at).total_seconds():.0f}s after the lead began, held through the window, back to 1 "
            f"{(fell - end).total_seconds():.0f}s after it ended (OllamaUnused for 1m, cooldown 30s)")
    print("\n" + line)
    report(line)
