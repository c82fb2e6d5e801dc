"""Scheduled minimums: which of a service's ``schedules`` apply at ``now`` (pure: ``now`` is passed in).

A window applies at ``now`` when its time intervals hold at *any* instant of ``[now, now + lead]``:
from ``lead`` before it starts until it ends (its end is exclusive, as in Alertmanager). So a
window shorter than its lead is applied without a gap, and a window that begins right after
midnight is applied from the evening before. ``lead`` is elapsed time: across a DST change the
window is applied ``lead`` of real time before its local start. The time intervals are judged by
the one evaluator of Alertmanager's semantics, ``routes.in_time_intervals`` (a local time that a
DST change skips never holds; one it repeats holds twice).

The effective minimum is the larger of ``min_replicas`` and the largest ``min_replicas`` of the
windows that apply, never above ``max_replicas``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .config import Schedule, ServicePolicy
from .routes import in_time_intervals

# Time intervals are made of whole local minutes, and every time zone's offset is whole minutes:
# whether one holds cannot change inside a minute of epoch time.
_STEP = 60


@dataclass(frozen=True)
class Applied:
    """A window that applies at ``now``: active (``starts_at`` is ``now``) or starting within its lead."""

    index: int  # its position in the service's ``schedules``
    window: Schedule
    starts_at: float  # the first instant of [now, now + lead] at which it holds

    def active(self, now: float) -> bool:
        return self.starts_at <= now


# (id of a window, the minute of ``now``) -> (holds in that minute, the first later minute at which
# it holds within a lead of the minute's end): whether a window holds changes only at minutes, so
# a sweep, a decision and /status in the same minute scan the lead once, not each time.
# The window itself is kept with its result: an id is reused once its object is gone.
_scans: dict[tuple[int, int], tuple[Schedule, bool, float | None]] = {}


def _scan(window: Schedule, minute: int) -> tuple[bool, float | None]:
    key = (id(window), minute)
    cached = _scans.get(key)
    if cached is not None and cached[0] is window:
        return cached[1], cached[2]
    entries: list[dict[str, Any]] = [interval.entry() for interval in window.time_intervals]
    holds = in_time_intervals(float(minute * _STEP), entries)
    at, later = (minute + 1) * _STEP, None
    while at <= (minute + 1) * _STEP + window.lead:
        if in_time_intervals(float(at), entries):
            later = float(at)
            break
        at += _STEP
    if len(_scans) > 4096:
        _scans.clear()
    _scans[key] = (window, holds, later)
    return holds, later


def _first_holding(window: Schedule, now: float) -> float | None:
    """The first instant of [now, now + lead] at which ``window`` holds, or None."""
    holds, later = _scan(window, math.floor(now / _STEP))
    if holds:
        return now
    return later if later is not None and later <= now + window.lead else None


def applying(schedules: list[Schedule], now: float) -> list[Applied]:
    """The windows that apply at ``now``, in configuration order."""
    found = []
    for index, window in enumerate(schedules):
        starts_at = _first_holding(window, now)
        if starts_at is not None:
            found.append(Applied(index, window, starts_at))
    return found


def scheduled_minimum(schedules: list[Schedule], now: float) -> int:
    """The largest ``min_replicas`` of the windows that apply at ``now`` (0 when none does)."""
    return max((a.window.min_replicas for a in applying(schedules, now)), default=0)


def effective_minimum(policy: ServicePolicy, now: float) -> int:
    """The larger of the configured and the scheduled minimum, within ``max_replicas``."""
    if not policy.schedules:
        return policy.min_replicas
    return min(max(policy.min_replicas, scheduled_minimum(policy.schedules, now)), policy.max_replicas)


def effective_policy(policy: ServicePolicy, now: float) -> ServicePolicy:
    """``policy`` with its effective minimum at ``now``: what a decision at ``now`` is made with."""
    minimum = effective_minimum(policy, now)
    return policy if minimum == policy.min_replicas else policy.model_copy(update={"min_replicas": minimum})
