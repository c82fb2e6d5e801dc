"""The replay: firing times, Alertmanager's notifications and the receiver's decisions over history."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from ..config import Config
from ..domain import Direction, ScaleRequest, ServiceSnapshot
from ..models import LABEL_SCALE, LABEL_SERVICE
from ..policy import decide, merge_requests
from ..routes import in_time_intervals, matching_routes, time_intervals
from ..state import STATE_LABELS, encode_time
from ..timeutil import format_rfc3339, parse_time_arg
from .rules import ScalingRule, query_range, scaling_rules


def iso(t: float) -> str:
    return format_rfc3339(t, micro=False)


# --- Alertmanager ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteTimings:
    group_wait: float
    group_interval: float
    repeat_interval: float
    mute: tuple[dict[str, Any], ...] = ()  # time_intervals entries that mute this route
    active: tuple[dict[str, Any], ...] | None = None  # entries outside which it is muted, if any

    def muted(self, t: float) -> bool:
        return in_time_intervals(t, list(self.mute)) or (self.active is not None and not in_time_intervals(t, list(self.active)))


def route_timings(am_config: dict[str, Any], labels: dict[str, str]) -> RouteTimings:
    """The timings and time intervals of the route a scaling alert with ``labels`` lands on."""
    route = matching_routes(am_config, labels)[0]
    return RouteTimings(
        route.seconds("group_wait"), route.seconds("group_interval"), route.seconds("repeat_interval"),
        tuple(time_intervals(am_config, route.mute_time_intervals)),
        tuple(time_intervals(am_config, route.active_time_intervals)) if route.active_time_intervals else None,
    )


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
        return sum(1 for a, b in zip(moves, moves[1:], strict=False) if a != b)


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
    for a, b in zip(firing, firing[1:], strict=False):
        if b - a > step * 1.5:
            runs.append((start, a))
            start = b
    runs.append((start, firing[-1]))
    for run_start, run_end in runs:
        t, last = run_start + timings.group_wait, None
        while t <= run_end + step:
            if _grid(t, step)[0] not in firing_set:  # resolved at the last evaluation before t
                break
            muted = timings.muted(t)
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
    sends: list[Send] = []
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
    for rule, svc, fired, wanted in per_rule:
        timings = route_timings(am_config, {"alertname": rule.alert, LABEL_SERVICE: svc, LABEL_SCALE: str(rule.direction)})
        for t in notifications(fired, rule.interval, timings):
            if rule.direction is Direction.DOWN and any(x in up_firing.get(svc, set()) for x in _grid(t, rule.interval)):
                continue  # inhibited by the service's firing scale-up
            at = next((wanted[x] for x in _grid(t, rule.interval) if x in wanted), None)
            sends.append((t, svc, rule.direction, at))
    return _apply(sorted(sends, key=lambda s: (s[0], s[1])), config, start, end, replicas)


Send = tuple[float, str, Direction, "int | None"]  # time, service, direction, desired_replicas


def _apply(sends: list[Send], config: Config, start: float, end: float, replicas: int | None) -> Replay:
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
        labels = {STATE_LABELS[d]: encode_time(s[str(d)]) for d in Direction if s[str(d)] is not None}
        snapshot = ServiceSnapshot(id="", name=svc, version=0, mode="replicated", replicas=s["replicas"],
                                   running=s["replicas"], pending_since=None, labels=labels, spec={})
        d = decide(svc, merge_requests(requests), policy, snapshot, t)
        out.events.append(Event(t, svc, str(d.direction), s["replicas"], d.target if d.target is not None else s["replicas"],
                                str(d.reason)))
        if d.applied and d.target is not None:
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


def main(prometheus: str, rules_path: list[str], config: Config, am_path: str, start: str, end: str,
         replicas: int | None, out: TextIO) -> int:
    t0, t1 = parse_time_arg(start), parse_time_arg(end)
    if t1 <= t0:
        raise ValueError("--to must be after --from")
    am_config = yaml.safe_load(Path(am_path).read_text())
    result = replay(scaling_rules(rules_path), config, am_config, prometheus, t0, t1, replicas)
    print_replay(result, config, t0, t1, out)
    return 0

