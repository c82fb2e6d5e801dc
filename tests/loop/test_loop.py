"""The whole loop, for real: load simulator -> Prometheus -> Alertmanager -> receiver -> swarm.

Timings are the shipped ones multiplied by LoopSettings.time_scale (1/12) through the
rendering step, except where a test names an override. Each test asserts the outcome on
the real swarm.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from docker.types import Resources

from devkit.loop import Loop, LoopSettings
from devkit.receiverproc import metric_value
from devkit.waiting import wait_for
from receiver.timeutil import parse_rfc3339

from ..conftest import report

pytestmark = [pytest.mark.swarm, pytest.mark.loop]

# OllamaIdle's `for` (the combined scale-down) is 10m shipped, 50s at 1/12: the tests that need it use 15s.
FAST_LOW = {"OllamaIdle": "15s"}
CHANGING = {"scaled_up", "scaled_down", "clamped_to_max", "clamped_to_min"}


@pytest.fixture
def loop_service(make_service):
    def make(replicas: int = 1):
        return make_service(replicas, resources=Resources(cpu_limit=1_000_000_000)).name

    return make


class Timeline:
    """Replica counts over time, polled from the swarm."""

    def __init__(self, loop: Loop):
        self.loop = loop
        self.start = time.monotonic()
        self.points: list[tuple[float, int, int]] = []

    def poll(self) -> tuple[int, int]:
        desired, running = self.loop.replicas()
        if not self.points or self.points[-1][1:] != (desired, running):
            self.points.append((time.monotonic() - self.start, desired, running))
        return desired, running

    def until(self, predicate, timeout: float, what: str) -> None:
        wait_for(lambda: predicate(*self.poll()), timeout, what, interval=0.25)

    def first(self, predicate) -> float:
        return next(t for t, d, r in self.points if predicate(d, r))


def moves(loop: Loop, direction: str) -> list[dict]:
    return [d for d in loop.receiver.decisions() if d["reason"] in CHANGING and d["direction"] == direction]


def at(decision: dict) -> float:
    return parse_rfc3339(decision["at"])


def test_demand_up_then_down_scales_to_the_needed_count_and_back_to_min_within_the_cooldowns(loop_service):
    service = loop_service(1)
    with Loop(service, LoopSettings(for_overrides=FAST_LOW)) as loop:
        timeline = Timeline(loop)
        # 2.4 cores of demand, 1 core per task: 4 tasks bring the average to 0.6, under 0.70.
        loop.set_demand(2.4)
        timeline.until(lambda d, r: d == 4 and r == 4, 150, "4 running replicas")
        reaction = timeline.first(lambda d, r: r >= 2)
        time.sleep(loop.timings["scale_up_cooldown"] + 2 * loop.timings["group_interval"])
        assert loop.replicas() == (4, 4), "it went past the needed count"
        ups = moves(loop, "up")
        assert [u["to"] for u in ups] == [2, 4]  # desired_replicas: ceil(running x 1.0 / 0.5)
        gaps = [at(b) - at(a) for a, b in zip(ups, ups[1:], strict=False)]
        assert all(g >= loop.timings["scale_up_cooldown"] for g in gaps), gaps
        assert loop.utilisation() < 0.70

        loop.set_demand(0.2)
        timeline.until(lambda d, r: d == 1, 150, "back to min")
        downs = moves(loop, "down")
        assert [d["to"] for d in downs] == [1]
        assert at(downs[0]) - at(ups[-1]) >= loop.timings["scale_down_cooldown"]
        floor = loop.reaction_floor()
    report(
        f"loop: demand step to the first new running replica {reaction:.1f}s; floor {floor:.1f}s (for "
        f"{loop.timings['high_for']}s + group_wait {loop.timings['group_wait']:.2f}s; scrape {loop.timings['scrape_interval']}s "
        f"and evaluation {loop.timings['evaluation_interval']}s add up to one interval each), time scale 1/12; "
        f"up steps {[u['to'] for u in ups]} {[f'{g:.1f}s apart' for g in gaps]}, down {[d['to'] for d in downs]}"
    )
    assert reaction >= floor


def amtool(loop: Loop, *args: str) -> str:
    result = subprocess.run(["amtool", f"--alertmanager.url={loop.alertmanager.url}", *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_silence_freezes_scaling_while_demand_stays_high_and_scaling_resumes_when_it_expires(loop_service):
    service = loop_service(1)
    with Loop(service, LoopSettings()) as loop:
        silence_seconds = 40
        amtool(loop, "silence", "add", f"service={service}", f"--duration={silence_seconds}s", "--comment=freeze for the test")
        expires = time.monotonic() + silence_seconds
        loop.set_demand(2.4)
        wait_for(lambda: loop.alert_states().get("OllamaHighCPU") == "firing", 60, "OllamaHighCPU to fire")
        time.sleep(max(0.0, expires - time.monotonic() - 3))
        assert loop.replicas()[0] == 1, "scaled while silenced"
        assert loop.receiver.decisions() == []
        assert loop.alert_states().get("OllamaHighCPU") == "firing"
        wait_for(lambda: loop.replicas()[0] >= 2, 60, "scaling to resume after the silence")
        resumed_after = time.monotonic() - expires
    report(f"loop: a {silence_seconds}s silence held 1 replica while OllamaHighCPU fired; scaling resumed {resumed_after:.1f}s after it expired")


def test_while_the_receiver_is_down_notifications_fail_and_the_scale_happens_once_it_is_back(loop_service):
    service = loop_service(1)
    with Loop(service, LoopSettings()) as loop:
        loop.receiver.stop()
        loop.set_demand(2.4)
        wait_for(lambda: loop.alertmanager_metric("alertmanager_notifications_failed_total", integration="webhook") > 0,
                 90, "Alertmanager to fail a notification")
        assert loop.replicas()[0] == 1
        loop.receiver.start()
        restarted = time.monotonic()
        wait_for(lambda: loop.replicas()[0] >= 2, 90, "the scale after the receiver came back")
        delay = time.monotonic() - restarted
        failed = loop.alertmanager_metric("alertmanager_notifications_failed_total", integration="webhook")
    report(f"loop: receiver down -> {failed:.0f} failed notifications; scaled {delay:.1f}s after it came back")


def test_resolved_notifications_never_change_replicas(loop_service):
    service = loop_service(1)
    with Loop(service, LoopSettings()) as loop:
        loop.set_demand(2.4)
        wait_for(lambda: loop.replicas()[0] == 2, 90, "the first scale-up")
        loop.set_demand(0.8)  # 0.4 per task at 2 replicas: neither high (0.70) nor low (0.20)
        wait_for(lambda: metric_value(loop.receiver.metrics(), "autoscaler_alerts_received_total", status="resolved") > 0,
                 90, "a resolved notification")
        decisions_at_resolution = len(loop.receiver.decisions())
        time.sleep(2 * loop.timings["group_interval"])
        assert loop.replicas()[0] == 2
        assert all(d["reason"] not in CHANGING for d in loop.receiver.decisions()[decisions_at_resolution:])
        assert [m["to"] for m in moves(loop, "up")] == [2]


def test_inside_business_hours_scale_down_is_muted(loop_service):
    service = loop_service(3)
    with Loop(service, LoopSettings(for_overrides=FAST_LOW, business_hours_now=True)) as loop:
        loop.set_demand(0.1)
        wait_for(lambda: loop.alert_states().get("OllamaIdle") == "firing", 90, "OllamaIdle to fire")
        time.sleep(loop.timings["group_wait"] + 3 * loop.timings["group_interval"])
        assert loop.alert_states().get("OllamaIdle") == "firing"
        assert loop.replicas()[0] == 3
        assert moves(loop, "down") == []
        received = metric_value(loop.receiver.metrics(), "autoscaler_alerts_received_total", status="firing")
    assert received == 0
