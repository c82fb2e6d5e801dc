"""`autoscaler backtest` against a real Prometheus holding history the test writes with
`promtool tsdb create-blocks-from openmetrics`; the expected scale events are known in advance."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from devkit.loop import SHIPPED_ALERTMANAGER, business_hours
from devkit.procs import start_prometheus
from devkit.render import render_alertmanager_config, render_rules
from receiver.backtest import RouteTimings, firing_times, notifications
from receiver.timeutil import format_rfc3339

pytestmark = pytest.mark.loop

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "ollama_ollama"
SCRAPE = 15


def utilisation(minute: float) -> float:
    """The recorded load: 10% for 10 minutes, 85% for 30, then 10% again."""
    return 0.85 if 10 <= minute < 40 else 0.10


def openmetrics(t0: int, minutes: int) -> str:
    lines = []
    for task in ("a1", "a2"):
        labels = (f'id="/docker/{task}",instance="node1:8080",job="cadvisor",'
                  f'container_label_com_docker_swarm_service_name="{SERVICE}",'
                  f'container_label_com_docker_swarm_task_name="{SERVICE}.{task[-1]}.{task}"')
        usage, cpu = 0.0, []
        for k in range(minutes * 60 // SCRAPE + 1):
            t = t0 + k * SCRAPE
            if k:
                usage += 2 * utilisation((k * SCRAPE - 1) / 60) * SCRAPE  # 2-core limit
            cpu.append(f'container_cpu_usage_seconds_total{{{labels},cpu="total"}} {usage:.3f} {t}')
        lines += cpu
        lines += [f"container_spec_cpu_quota{{{labels}}} 200000 {t0 + k * SCRAPE}" for k in range(minutes * 4 + 1)]
        lines += [f"container_spec_cpu_period{{{labels}}} 100000 {t0 + k * SCRAPE}" for k in range(minutes * 4 + 1)]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    work = tmp_path_factory.mktemp("backtest")
    t0 = (int(time.time()) - 3 * 3600) // 3600 * 3600  # a whole hour, about three hours ago
    (work / "history.om").write_text(openmetrics(t0, 60))
    prom_dir = work / "prometheus"
    data = prom_dir / "prometheus-data"  # where start_prometheus keeps its TSDB
    result = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(work / "history.om"), str(data)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with start_prometheus("global: {scrape_interval: 15s}\n", [], prom_dir) as prom:
        yield prom, t0, work


def run_backtest(prom, t0: int, work: Path, *, inside_business_hours: bool) -> str:
    config = work / "receiver.yml"
    config.write_text(yaml.safe_dump({"services": {SERVICE: {"min_replicas": 1, "max_replicas": 4}}}))
    weekdays, times = business_hours(datetime.fromtimestamp(t0 + 1800, UTC), inside_business_hours)
    if inside_business_hours:
        times = ("00:00", "24:00")  # the whole recorded hour
    am = work / f"alertmanager-{inside_business_hours}.yml"
    am.write_text(render_alertmanager_config(SHIPPED_ALERTMANAGER, "http://127.0.0.1:9/webhook", work / "token",
                                             time_zone="UTC", business_weekdays=weekdays, business_times=times))
    # The history holds CPU only: the signal switch enables the CPU signal alone (as a CPU-only
    # deployment would), so OllamaIdle needs only the CPU vote.
    switch = work / "ollama-scaling.rules.yml"
    switch.write_text(render_rules(ROOT / "rules" / "ollama-scaling.rules.yml", signals=["cpu"]))
    result = subprocess.run(
        [sys.executable, "-m", "receiver", "backtest", "--prometheus", prom.url,
         "--rules", str(ROOT / "rules" / "ollama-cpu.rules.yml"), "--rules", str(switch), "--config", str(config),
         "--alertmanager-config", str(am), "--from", str(t0), "--to", str(t0 + 3600), "--replicas", "2"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def iso(t: float) -> str:
    return format_rfc3339(t, micro=False)


def test_backtest_finds_the_scale_up_and_the_scale_down_known_in_advance(history):
    prom, t0, work = history
    out = run_backtest(prom, t0, work, inside_business_hours=False)
    # Load steps up at 10m: rate[1m] sees it whole at 11m, `for` 2m -> firing at 13m, group_wait 10s;
    # desired_replicas = ceil(2 x 0.85 / 0.5) = 4. Load drops at 40m: low from 41m, `for` 10m ->
    # 51m, +10s; desired = ceil(2 x 0.1 / 0.5) = 1.
    up_at, down_at = t0 + 13 * 60 + 10, t0 + 51 * 60 + 10
    rows = [tuple(line.split()[i] for i in (0, 2, 3, 4)) for line in out.splitlines() if line.startswith("20")]
    moves = [r for r in rows if r[2].split("->")[0] != r[2].split("->")[1]]
    assert moves == [
        (iso(up_at), "up", "2->4", "scaled_up"),
        (iso(down_at), "down", "4->1", "scaled_down"),
    ], out
    # Re-sends of the still-firing alerts meet the bounds: reported, not moved.
    assert (iso(up_at + 150), "up", "4->4", "at_max") in rows
    assert (iso(down_at + 330), "down", "1->1", "at_min") in rows
    replica_seconds = 2 * (up_at - t0) + 4 * (down_at - up_at) + 1 * (t0 + 3600 - down_at)
    assert f"2 scale events, 1 direction changes, {replica_seconds} replica-seconds" in out


def test_backtest_applies_the_business_hours_mute_to_scale_down(history):
    prom, t0, work = history
    out = run_backtest(prom, t0, work, inside_business_hours=True)
    assert "scaled_up" in out
    assert "down" not in " ".join(line for line in out.splitlines() if line.startswith("20"))
    assert "1 scale events, 0 direction changes" in out


def test_for_restarts_after_a_gap_and_alertmanager_resends_after_repeat_interval():
    held = [(t, 1.0) for t in range(0, 300, 30)] + [(t, 1.0) for t in range(360, 600, 30)]  # a gap at 300-330
    fired = firing_times(held, 120)
    assert fired[0] == 120 and 300 not in fired and fired[fired.index(270) + 1] == 480
    sends = notifications([float(t) for t in range(120, 1200, 30)], 30, RouteTimings(10, 30, 135))
    assert sends[:3] == [130, 280, 430]  # first after group_wait, then every 2m30s (> 2m15s, on a 30s tick)
    assert math.isclose(sends[1] - sends[0], 150)
