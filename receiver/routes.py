"""Alertmanager's routing tree and time intervals, evaluated as Alertmanager 0.25 does.

``matching_routes`` walks the tree like ``dispatch.Route.Match``: depth first, a child that
matches stops its siblings unless it has ``continue``, a route with no matching child is
itself the match. Each route inherits receiver, grouping and timings from its parent;
``mute_time_intervals`` and ``active_time_intervals`` are *not* inherited (``NewRoute``
sets them from the route's own configuration only).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .matchers import route_matchers
from .timeutil import parse_duration

# In Go's time.Weekday order, which Alertmanager compares ranges in: "sunday:monday" is 0..1,
# "friday:sunday" is refused by Alertmanager (start after end).
WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
DEFAULTS = {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}
TIMING_KEYS = tuple(DEFAULTS)
_ENTRY_KEYS = ("weekdays", "times", "days_of_month", "months", "years", "location")
_TIME = re.compile(r"(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)")


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


def _ranges(specs: list[str], parse: Callable[[str], int]) -> list[tuple[int, int]]:
    out = []
    for spec in specs:
        first, _, last = str(spec).partition(":")
        out.append((parse(first), parse(last or first)))
    return out


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _weekday(name: str) -> int:
    return WEEKDAYS.index(name.strip().lower())


def _month(text: str) -> int:
    text = text.strip().lower()
    return int(text) if text.lstrip("-").isdigit() else MONTHS.index(text) + 1


def _in_days_of_month(local: datetime, specs: list[str]) -> bool:
    """As timeinterval.go: a negative day counts from the month's end (-1 is its last day); a range
    is clamped to the month, and one that begins after the month's last day holds no day of it."""
    days = calendar.monthrange(local.year, local.month)[1]
    for begin, end in _ranges(specs, int):
        begin = days + begin + 1 if begin < 0 else begin
        end = days + end + 1 if end < 0 else end
        if begin > days:
            continue
        if max(-days, min(begin, days)) <= local.day <= max(-days, min(end, days)):
            return True
    return False


def _known_fields(entry: Mapping[str, Any]) -> None:
    unknown = set(entry) - set(_ENTRY_KEYS)
    if unknown:
        raise ValueError(f"time interval fields not understood: {', '.join(sorted(unknown))}")


def _in_entry(epoch: float, entry: Mapping[str, Any]) -> bool:
    _known_fields(entry)
    local = datetime.fromtimestamp(epoch, ZoneInfo(entry.get("location", "UTC")))
    minute = local.hour * 60 + local.minute
    if "times" in entry and not any(_minutes(r["start_time"]) <= minute < _minutes(r["end_time"])
                                    for r in entry["times"]):
        return False
    if "days_of_month" in entry and not _in_days_of_month(local, entry["days_of_month"]):
        return False
    checks: tuple[tuple[str, int, Callable[[str], int]], ...] = (
        ("months", local.month, _month),
        ("weekdays", (local.weekday() + 1) % 7, _weekday),  # Go's numbering: sunday is 0
        ("years", local.year, int),
    )
    return all(key not in entry or any(lo <= value <= hi for lo, hi in _ranges(entry[key], parse))
               for key, value, parse in checks)


def _ordered(key: str, specs: list[str], parse: Callable[[str], int], lo: int, hi: int) -> None:
    for spec in specs:
        try:
            (begin, end), = _ranges([spec], parse)
        except ValueError:
            raise ValueError(f"{key}: {spec!r} is not a valid {key} entry") from None
        if not (lo <= begin <= hi and lo <= end <= hi):
            raise ValueError(f"{key}: {spec!r} is out of range")
        if begin > end:
            raise ValueError(f"{key}: {spec!r} ends before it starts")


def _check_days_of_month(specs: list[str]) -> None:
    try:
        ranges = _ranges(specs, int)
    except ValueError:
        raise ValueError(f"days_of_month: {specs!r} holds something that is not a day or a range of days") from None
    for begin, end in ranges:
        if not (begin and end and -31 <= begin <= 31 and -31 <= end <= 31):
            raise ValueError(f"days_of_month: {begin}:{end} is out of range (1..31 or -31..-1)")
        if begin < 0 < end:
            raise ValueError(f"days_of_month: {begin}:{end}: the end must be negative when the start is")
        if (28 + begin if begin < 0 else begin) > (28 + end if end < 0 else end):
            raise ValueError(f"days_of_month: end day {end} is always before start day {begin}")


def check_time_interval(entry: Mapping[str, Any]) -> None:
    """Refuse what Alertmanager's timeinterval.go refuses when loading one ``time_intervals``
    entry (a ValueError naming the field): times as HH:MM up to 24:00 with start before end,
    ranges whose start is not after their end, days of the month 1..31 or -31..-1, a location
    the time zone database knows."""
    _known_fields(entry)
    for r in entry.get("times") or []:
        for key in ("start_time", "end_time"):
            if not _TIME.fullmatch(str(r.get(key, ""))):
                raise ValueError(f"times: {key} {r.get(key)!r} is not HH:MM (00:00 to 24:00)")
        if _minutes(r["start_time"]) >= _minutes(r["end_time"]):
            raise ValueError(f"times: start_time {r['start_time']} is not before end_time {r['end_time']}")
    _ordered("weekdays", entry.get("weekdays") or [], _weekday, 0, 6)
    _ordered("months", entry.get("months") or [], _month, 1, 12)
    _ordered("years", entry.get("years") or [], int, 0, 9999)
    _check_days_of_month(entry.get("days_of_month") or [])
    location = entry.get("location")
    if location is not None:
        try:
            ZoneInfo(str(location))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"location: unknown time zone {location!r} (an IANA name such as Europe/Berlin, or UTC)") from None


def in_time_intervals(epoch: float, entries: list[dict[str, Any]]) -> bool:
    """Whether ``epoch`` falls in any entry, as Alertmanager's timeinterval.ContainsTime decides
    (times, days_of_month, months, weekdays, years, in the entry's location)."""
    return any(_in_entry(epoch, entry) for entry in entries)


MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
