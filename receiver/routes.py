"""Alertmanager's routing tree and time intervals, evaluated as Alertmanager 0.25 does.

``matching_routes`` walks the tree like ``dispatch.Route.Match``: depth first, a child that
matches stops its siblings unless it has ``continue``, a route with no matching child is
itself the match. Each route inherits receiver, grouping and timings from its parent;
``mute_time_intervals`` and ``active_time_intervals`` are *not* inherited (``NewRoute``
sets them from the route's own configuration only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .matchers import route_matchers
from .timeutil import parse_duration

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
DEFAULTS = {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}
TIMING_KEYS = tuple(DEFAULTS)


@dataclass(frozen=True)
class RouteOpts:
    receiver: str
    timings: dict[str, str]  # group_wait, group_interval, repeat_interval as written
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()

    def seconds(self, key: str) -> float:
        return parse_duration(self.timings[key])


def _opts(route: Mapping[str, Any], parent: RouteOpts) -> RouteOpts:
    timings = {**parent.timings, **{k: str(route[k]) for k in TIMING_KEYS if k in route}}
    return replace(
        parent,
        receiver=route.get("receiver") or parent.receiver,
        timings=timings,
        mute_time_intervals=tuple(route.get("mute_time_intervals") or ()),
        active_time_intervals=tuple(route.get("active_time_intervals") or ()),
    )


def _match(route: Mapping[str, Any], opts: RouteOpts, labels: Mapping[str, str]) -> list[RouteOpts]:
    if not all(m.matches(labels) for m in route_matchers(route)):
        return []
    found: list[RouteOpts] = []
    for child in route.get("routes") or []:
        matches = _match(child, _opts(child, opts), labels)
        found += matches
        if matches and not child.get("continue", False):
            break
    return found or [opts]


def matching_routes(config: Mapping[str, Any], labels: Mapping[str, str]) -> list[RouteOpts]:
    """The routes an alert with ``labels`` lands on (one, unless ``continue`` is used)."""
    root = config["route"]
    opts = _opts(root, RouteOpts(receiver="", timings=dict(DEFAULTS)))
    return _match(root, opts, labels)


def time_intervals(config: Mapping[str, Any], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The time_intervals entries of the named intervals (``time_intervals`` and the older
    ``mute_time_intervals`` top-level lists)."""
    named = {ti["name"]: ti["time_intervals"] for key in ("time_intervals", "mute_time_intervals")
             for ti in config.get(key) or []}
    missing = [n for n in names if n not in named]
    if missing:
        raise ValueError(f"no time interval named {', '.join(missing)}")
    return [entry for name in names for entry in named[name]]


def _ranges(specs: list[str], parse: Any) -> list[tuple[int, int]]:
    out = []
    for spec in specs:
        first, _, last = str(spec).partition(":")
        out.append((parse(first), parse(last or first)))
    return out


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def in_time_intervals(epoch: float, entries: list[dict[str, Any]]) -> bool:
    """Whether ``epoch`` falls in any entry (weekdays, times, days_of_month, months, years, location)."""
    for entry in entries:
        unknown = set(entry) - {"weekdays", "times", "days_of_month", "months", "years", "location"}
        if unknown:
            raise ValueError(f"time interval fields not understood: {', '.join(sorted(unknown))}")
        local = datetime.fromtimestamp(epoch, ZoneInfo(entry.get("location", "UTC")))
        checks = (
            ("weekdays", local.weekday(), lambda d: WEEKDAYS.index(d.lower())),
            ("months", local.month, lambda m: int(m) if m.isdigit() else _MONTHS.index(m.lower()) + 1),
            ("years", local.year, int),
            ("days_of_month", local.day, int),
        )
        if not all(key not in entry or any(lo <= value <= hi for lo, hi in _ranges(entry[key], parse))
                   for key, value, parse in checks):
            continue
        minute = local.hour * 60 + local.minute
        if "times" in entry and not any(_minutes(r["start_time"]) <= minute < _minutes(r["end_time"])
                                        for r in entry["times"]):
            continue
        return True
    return False


_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
