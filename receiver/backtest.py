"""``autoscaler backtest``: replay scaling rules over history before deploying them.

1. The scaling alerts of a rule file (alerts with a ``scale`` label) are evaluated over
   ``[from, to]`` through Prometheus' range-query API, one point per rule-group interval.
   Recording rules of the same file are inlined into the expressions, so history recorded
   before the rules existed (or by other rules) can be replayed.
2. ``for`` is applied: an alert fires once its expression held at every point for that long.
3. Alertmanager's timings are applied per group (alert name and service): the first
   notification ``group_wait`` after it fires, re-sends at the first ``group_interval`` tick
   at which more than ``repeat_interval`` has passed; a firing scale-up inhibits the
   scale-down of the same service; scale-down is muted in the route's mute time intervals.
4. Each notification goes through the receiver's own policy (``policy.decide``) with the
   configuration's bounds, steps and cooldowns, starting from ``--replicas``.

The replay cannot know how the load would have spread over the replicas it adds: it reads
utilisation as history recorded it. So it answers "when would these rules have asked, and
what would the receiver have done", not "what would utilisation have become".
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import yaml

from .config import Config
from .models import ANNOTATION_DESIRED, LABEL_SCALE, LABEL_SERVICE
from .policy import Direction, ScaleRequest, ServiceState, decide, merge_requests

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(text: str | None, default: float = 0.0) -> float:
    if not text:
        return default
    parts = _DURATION.findall(str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * _UNIT[u] for n, u in parts)


def parse_time(text: str) -> float:
    """Unix seconds, or RFC 3339 (a trailing Z or an offset)."""
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- rules -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingRule:
    alert: str
    expr: str
    for_seconds: float
    interval: float
    direction: Direction
    desired_expr: str | None  # the query inside the desired_replicas template, if any


def inline_recording_rules(expr: str, recorded: dict[str, str]) -> str:
    """Replace each bare reference to a recorded series by its expression, recursively."""
    for _ in range(20):
        changed = False
        for name, body in recorded.items():
            pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:])(\s*\{{)?")
            for m in pattern.finditer(expr):
                if m.group(1):
                    raise ValueError(f"cannot inline {name}{{...}}: label matchers on a recorded series")
            new = pattern.sub(f"({body.strip()})", expr)
            if new != expr:
                expr, changed = new, True
        if not changed:
            return expr
    raise ValueError("recording rules nest too deep to inline")


def scaling_rules(path: str | Path) -> list[ScalingRule]:
    doc = yaml.safe_load(Path(path).read_text())
    recorded = {r["record"]: r["expr"] for g in doc["groups"] for r in g["rules"] if "record" in r}
    rules = []
    for group in doc["groups"]:
        interval = seconds(group.get("interval"), 60.0)
        for r in group["rules"]:
            scale = (r.get("labels") or {}).get(LABEL_SCALE)
            if "alert" not in r or scale not in ("up", "down"):
                continue
            template = (r.get("annotations") or {}).get(ANNOTATION_DESIRED, "")
            query = re.search(r'printf\s+"([^"]+)"', template)
            desired = None
            if query:
                # "metric{service=%q}" -> the metric for every service; the replay picks by label.
                desired = inline_recording_rules(re.sub(r"\{[^}]*%q[^}]*\}", "", query.group(1)), recorded)
            rules.append(ScalingRule(r["alert"], inline_recording_rules(r["expr"], recorded),
                                     seconds(r.get("for")), interval, Direction(scale), desired))
    if not rules:
        raise ValueError(f"{path}: no alert with a scale label of up or down")
    return rules


# --- Prometheus ----------------------------------------------------------------------------------


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus.rstrip('/')}/api/v1/query_range?{params}", timeout=60) as resp:
        answer = json.loads(resp.read())
    if answer.get("status") != "success":
        raise ValueError(f"Prometheus refused {expr!r}: {answer.get('error')}")
    return answer["data"]["result"]


# --- Alertmanager ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteTimings:
    group_wait: float
    group_interval: float
    repeat_interval: float
    mute: tuple[dict[str, Any], ...] = ()  # time_intervals entries that mute this route


def route_timings(am_config: dict[str, Any], direction: Direction) -> RouteTimings:
    """The timings of the route a scaling alert lands on (first match, inheriting)."""
    labels = {LABEL_SCALE: str(direction)}
    route = am_config["route"]
    t = {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"} | {k: route[k] for k in ("group_wait", "group_interval", "repeat_interval") if k in route}
    mute_names: list[str] = list(route.get("mute_time_intervals") or [])
    while True:
        child = next((c for c in route.get("routes") or [] if _route_matches(c, labels)), None)
        if child is None:
            break
        t |= {k: child[k] for k in ("group_wait", "group_interval", "repeat_interval") if k in child}
        mute_names = list(child.get("mute_time_intervals") or mute_names)
        route = child
    named = {ti["name"]: ti["time_intervals"] for ti in am_config.get("time_intervals") or []}
    mute = tuple(entry for name in mute_names for entry in named.get(name, []))
    return RouteTimings(seconds(t["group_wait"]), seconds(t["group_interval"]), seconds(t["repeat_interval"]), mute)


def _route_matches(route: dict[str, Any], labels: dict[str, str]) -> bool:
    for m in route.get("matchers") or []:
        name, op, value = re.fullmatch(r'\s*([\w]+)\s*(=~|!~|!=|=)\s*"?([^"]*)"?\s*', m).groups()
        actual = labels.get(name, "")
        hit = re.fullmatch(value, actual) is not None if "~" in op else actual == value
        if hit == op.startswith("!"):
            return False
    return True


def in_intervals(t: float, entries: tuple[dict[str, Any], ...]) -> bool:
    """Whether ``t`` falls in any of Alertmanager's time_intervals entries (weekdays and times)."""
    for entry in entries:
        local = datetime.fromtimestamp(t, ZoneInfo(entry.get("location", "UTC")))
        if "weekdays" in entry and not any(_in_weekdays(local.weekday(), w) for w in entry["weekdays"]):
            continue
        if "times" in entry:
            minute = local.hour * 60 + local.minute
            if not any(_hm(r["start_time"]) <= minute < _hm(r["end_time"]) for r in entry["times"]):
                continue
        return True
    return False


def _in_weekdays(day: int, spec: str) -> bool:
    first, _, last = spec.partition(":")
    lo, hi = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
    return lo <= day <= hi


def _hm(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


# --- the replay -----------------------------------------------------------------------------------


@dataclass
class Event:
    time: float
    service: str
    direction: str
    current: int
    target: int
    reason: str


@dataclass
class Replay:
    events: list[Event] = field(default_factory=list)  # every decision, no-ops included
    replica_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def scale_events(self) -> list[Event]:
        return [e for e in self.events if e.current != e.target]

    def direction_changes(self, service: str) -> int:
        moves = [e.direction for e in self.scale_events if e.service == service]
        return sum(1 for a, b in zip(moves, moves[1:]) if a != b)


def firing_times(points: list[tuple[float, float]], for_seconds: float) -> list[float]:
    """Pure: the evaluation times at which an alert is firing, from the times its expression held."""
    firing, active_since, previous = [], None, None
    step = None
    for t, _ in points:
        if previous is not None:
            step = t - previous if step is None else min(step, t - previous)
        if active_since is None or (step is not None and previous is not None and t - previous > step * 1.5):
            active_since = t
        if t - active_since >= for_seconds:
            firing.append(t)
        previous = t
    return firing


def notifications(firing: list[float], step: float, timings: RouteTimings) -> list[float]:
    """Pure: when Alertmanager sends a group that fires at ``firing`` (evaluation times)."""
    sends: list[float] = []
    firing_set = set(round(t, 3) for t in firing)
    if not firing:
        return sends
    runs, start = [], firing[0]
    for a, b in zip(firing, firing[1:]):
        if b - a > step * 1.5:
            runs.append((start, a))
            start = b
    runs.append((start, firing[-1]))
    for run_start, run_end in runs:
        t, last = run_start + timings.group_wait, None
        while t <= run_end + step:
            if _grid(t, step)[0] not in firing_set:  # resolved at the last evaluation before t
                break
            muted = in_intervals(t, timings.mute)
            if not muted and (last is None or t - last > timings.repeat_interval):
                sends.append(t)
                last = t
            t += timings.group_interval
    return sends


def _grid(t: float, step: float) -> list[float]:
    base = math.floor(t / step) * step
    return [round(base, 3), round(base - step, 3)]


def replay(rules: list[ScalingRule], config: Config, am_config: dict[str, Any], prometheus: str,
           start: float, end: float, replicas: int | None = None) -> Replay:
    sends: list[tuple[float, str, Direction, int | None]] = []  # (time, service, direction, desired)
    up_firing: dict[str, set[float]] = {}
    per_rule = []
    for rule in rules:
        grid_start = math.floor(start / rule.interval) * rule.interval  # points on multiples of the step
        series = query_range(prometheus, rule.expr, grid_start, end, rule.interval)
        desired: dict[str, dict[float, int]] = {}
        if rule.desired_expr:
            for s in query_range(prometheus, rule.desired_expr, grid_start, end, rule.interval):
                svc = s["metric"].get(LABEL_SERVICE, "")
                desired[svc] = {round(float(t), 3): int(round(float(v))) for t, v in s["values"] if v not in ("NaN", "+Inf", "-Inf")}
        for s in series:
            svc = s["metric"].get(LABEL_SERVICE)
            if svc not in config.services:
                continue
            fired = firing_times([(float(t), float(v)) for t, v in s["values"]], rule.for_seconds)
            per_rule.append((rule, svc, fired, desired.get(svc, {})))
            if rule.direction is Direction.UP:
                up_firing.setdefault(svc, set()).update(round(t, 3) for t in fired)
    for rule, svc, fired, desired in per_rule:
        timings = route_timings(am_config, rule.direction)
        for t in notifications(fired, rule.interval, timings):
            if rule.direction is Direction.DOWN and any(x in up_firing.get(svc, set()) for x in _grid(t, rule.interval)):
                continue  # inhibited by the service's firing scale-up
            at = next((desired[x] for x in _grid(t, rule.interval) if x in desired), None)
            sends.append((t, svc, rule.direction, at))
    return _apply(sorted(sends, key=lambda s: (s[0], s[1])), config, start, end, replicas)


def _apply(sends, config: Config, start: float, end: float, replicas: int | None) -> Replay:
    out = Replay()
    state: dict[str, dict[str, Any]] = {
        name: {"replicas": policy.min_replicas if replicas is None else replicas, "up": None, "down": None, "since": start}
        for name, policy in config.services.items()
    }
    seconds_at: dict[str, float] = {name: 0.0 for name in config.services}
    by_time: dict[tuple[float, str], list[ScaleRequest]] = {}
    for t, svc, direction, desired in sends:
        by_time.setdefault((t, svc), []).append(
            ScaleRequest(direction, targets=() if desired is None else (desired,), step=desired is None))
    for (t, svc), requests in sorted(by_time.items()):
        s, policy = state[svc], config.services[svc]
        current = ServiceState(replicas=s["replicas"], running=s["replicas"], last_scale_up=s["up"], last_scale_down=s["down"])
        d = decide(merge_requests(requests), current, policy, t)
        out.events.append(Event(t, svc, str(d.direction), d.current, d.target, str(d.reason)))
        if d.reason.changes:
            seconds_at[svc] += s["replicas"] * (t - s["since"])
            s.update(replicas=d.target, since=t, **{str(d.direction): t})
    for svc, s in state.items():
        seconds_at[svc] += s["replicas"] * (end - s["since"])
    out.replica_seconds = seconds_at
    return out


def print_replay(result: Replay, config: Config, start: float, end: float, out: TextIO) -> None:
    print(f"replay {iso(start)} .. {iso(end)} ({(end - start) / 3600:.2f}h)", file=out)
    print(f"{'time':<21} {'service':<24} {'direction':<9} {'replicas':<9} reason", file=out)
    for e in result.events:
        print(f"{iso(e.time):<21} {e.service:<24} {e.direction:<9} {f'{e.current}->{e.target}':<9} {e.reason}", file=out)
    for svc in config.services:
        moves = [e for e in result.scale_events if e.service == svc]
        print(f"{svc}: {len(moves)} scale events, {result.direction_changes(svc)} direction changes, "
              f"{result.replica_seconds[svc]:.0f} replica-seconds "
              f"({result.replica_seconds[svc] / max(end - start, 1):.2f} replicas on average)", file=out)


def main(prometheus: str, rules_path: str, config: Config, am_path: str, start: str, end: str,
         replicas: int | None, out: TextIO) -> int:
    t0, t1 = parse_time(start), parse_time(end)
    if t1 <= t0:
        raise ValueError("--to must be after --from")
    am_config = yaml.safe_load(Path(am_path).read_text())
    result = replay(scaling_rules(rules_path), config, am_config, prometheus, t0, t1, replicas)
    print_replay(result, config, t0, t1, out)
    return 0

