"""receiver/routes.py walks a routing tree and reads time intervals as Alertmanager 0.25 does
(dispatch/route.go, timeinterval/timeinterval.go); amtool, Alertmanager's own code, agrees on the
shipped configuration."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.routes import in_time_intervals, matching_routes

SHIPPED = Path(__file__).resolve().parents[1] / "alertmanager" / "alertmanager.yml"


def tree(*routes: dict[str, Any], **root: Any) -> dict[str, Any]:
    return {"route": {"receiver": "default", **root, "routes": list(routes)}}


UP = {"alertname": "OllamaHighCPU", "service": "s", "scale": "up"}
DOWN = {"alertname": "OllamaLowCPU", "service": "s", "scale": "down"}


def test_a_child_inherits_receiver_and_timings_and_overrides_only_what_it_sets():
    config = tree({"matchers": ["scale=up"], "repeat_interval": "2m"},
                  receiver="r", group_wait="1s", group_interval="2s", repeat_interval="3s")
    [route] = matching_routes(config, UP)
    assert (route.receiver, route.timings) == ("r", {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "2m"})


def test_the_root_takes_alertmanagers_default_timings():
    [route] = matching_routes(tree(), UP)
    assert route.timings == {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}


@pytest.mark.parametrize("key", ["mute_time_intervals", "active_time_intervals"])
def test_a_child_does_not_inherit_its_parents_time_intervals(key):
    config = tree({"receiver": "a", "matchers": ['scale=~"up|down"'], key: ["night"],
                   "routes": [{"matchers": ["scale=down"]}]})
    [down] = matching_routes(config, DOWN)
    [up] = matching_routes(config, UP)
    assert (down.receiver, getattr(down, key)) == ("a", ())
    assert getattr(up, key) == ("night",)


@pytest.mark.parametrize(
    ("first", "receivers"), [({}, ["a"]), ({"continue": True}, ["a", "b"])], ids=["first match stops", "continue"])
def test_the_first_matching_child_stops_its_siblings_unless_it_continues(first, receivers):
    config = tree({"receiver": "a", "matchers": ["scale=up"], **first}, {"receiver": "b", "matchers": ["service=s"]})
    assert [r.receiver for r in matching_routes(config, UP)] == receivers


def test_a_route_whose_children_all_miss_is_itself_the_match():
    config = tree({"receiver": "a", "matchers": ["service=s"], "routes": [{"receiver": "b", "matchers": ["scale=sideways"]}]})
    assert [r.receiver for r in matching_routes(config, UP)] == ["a"]
    assert [r.receiver for r in matching_routes(config, {"service": "t"})] == ["default"]


def test_the_older_match_and_match_re_maps_are_anchored_matchers():
    config = tree({"receiver": "a", "match": {"service": "s"}, "match_re": {"scale": "u"}},
                  {"receiver": "b", "match_re": {"scale": "u.*"}})
    assert [r.receiver for r in matching_routes(config, UP)] == ["b"]


@pytest.mark.parametrize(
    ("labels", "receiver", "repeat", "mute"),
    [(UP, "autoscaler", "2m15s", ()), (DOWN, "autoscaler", "5m15s", ("business-hours",)),
     ({"alertname": "OllamaCPUSignalMissing", "service": "s"}, "default", "4h", ())],
    ids=["scale up", "scale down", "an alert for humans"],
)
def test_the_shipped_routes(labels, receiver, repeat, mute):
    [route] = matching_routes(yaml.safe_load(SHIPPED.read_text()), labels)
    assert (route.receiver, route.timings["repeat_interval"], route.mute_time_intervals) == (receiver, repeat, mute)


def _amtool_receivers(config: Path, labels: dict[str, str]) -> list[str]:
    amtool = shutil.which("amtool")
    assert amtool, "amtool is not on PATH: scripts/setup.sh installs the Debian package prometheus-alertmanager"
    result = subprocess.run([amtool, "config", "routes", "test", f"--config.file={config}",
                             *(f"{k}={v}" for k, v in labels.items())],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().split(",")


CONTINUE_TREE = """
route:
  receiver: default
  routes:
    - receiver: a
      matchers: ['scale=~"up|down"']
      continue: true
      routes:
        - receiver: a-down
          match: {scale: down}
    - receiver: b
      match_re: {service: "s|t"}
    - receiver: c
      matchers: ['alertname=~"Ollama.*"']
receivers: [{name: default}, {name: a}, {name: a-down}, {name: b}, {name: c}]
"""


@pytest.mark.parametrize(
    "labels",
    [UP, DOWN, {"alertname": "OllamaCPUSignalMissing", "service": "s"}, {"alertname": "OllamaHighCPU", "service": "u"},
     {"alertname": "NodeDown"}, {**UP, "scale": "sideways"}],
    ids=["up", "down", "signal missing", "up of another service", "unrelated", "unknown scale"],
)
@pytest.mark.parametrize("config", ["shipped", "continue"])
def test_amtool_and_routes_py_send_each_alert_to_the_same_receivers(tmp_path, config, labels):
    path = SHIPPED
    if config == "continue":
        path = tmp_path / "alertmanager.yml"
        path.write_text(CONTINUE_TREE)
    ours = [r.receiver for r in matching_routes(yaml.safe_load(path.read_text()), labels)]
    assert _amtool_receivers(path, labels) == ours


def at(text: str) -> float:
    """Epoch seconds of a UTC time."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


WORKDAY = {"weekdays": ["monday:friday"], "times": [{"start_time": "08:00", "end_time": "18:00"}]}


@pytest.mark.parametrize(
    ("when", "entry", "inside"),
    [
        ("2026-11-30T08:00", WORKDAY, True),  # a Monday: start_time is inside
        ("2026-11-30T17:59", WORKDAY, True),
        ("2026-11-30T18:00", WORKDAY, False),  # end_time is not
        ("2026-11-28T12:00", WORKDAY, False),  # a Saturday
        ("2026-11-29T12:00", {"weekdays": ["sunday:monday"]}, True),  # Go counts from sunday = 0
        ("2026-11-28T12:00", {"weekdays": ["sunday:monday"]}, False),
        ("2026-11-30T23:59", {"times": [{"start_time": "22:00", "end_time": "24:00"}]}, True),
        ("2026-11-30T07:30", {**WORKDAY, "location": "Europe/Berlin"}, True),  # 08:30 in Berlin
        ("2026-11-30T17:30", {**WORKDAY, "location": "Europe/Berlin"}, False),  # 18:30 in Berlin
        ("2026-11-29T23:30", {**WORKDAY, "location": "Europe/Berlin"}, False),  # Monday 00:30 in Berlin
        ("2026-12-01T12:00", {"months": ["december"]}, True),
        ("2026-12-01T12:00", {"months": ["1:11"]}, False),
        ("2026-12-01T12:00", {"years": ["2025:2026"]}, True),
        ("2026-12-01T12:00", {"days_of_month": ["1:5"]}, True),
        ("2027-02-28T12:00", {"days_of_month": ["-1"]}, True),  # the last day of February 2027
        ("2028-02-28T12:00", {"days_of_month": ["-1"]}, False),  # 2028 is a leap year
        ("2028-02-29T12:00", {"days_of_month": ["-1"]}, True),
        ("2026-11-24T12:00", {"days_of_month": ["-7:-1"]}, True),  # the last week of November
        ("2026-11-23T12:00", {"days_of_month": ["-7:-1"]}, False),
        ("2026-11-30T12:00", {"days_of_month": ["25:31"]}, True),  # clamped to the month
        ("2027-02-28T12:00", {"days_of_month": ["30:31"]}, False),  # begins after February ends
        ("2026-11-01T12:00", {"days_of_month": ["-31:-30"]}, True),  # 0:1 in a 30-day month: the 1st
        ("2026-11-02T12:00", {"days_of_month": ["-31:-30"]}, False),
    ],
    ids=lambda v: {True: "inside", False: "outside"}.get(v) if isinstance(v, bool) else
    v if isinstance(v, str) else "+".join(f"{k}={v[k]}" for k in v if k != "times") or "times",
)
def test_time_intervals_are_read_as_alertmanager_reads_them(when, entry, inside):
    assert in_time_intervals(at(when), [entry]) is inside
