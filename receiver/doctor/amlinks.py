"""The Alertmanager links of one service (pure): where its scaling alerts are routed in the live
configuration (as ``amtool config routes test`` would walk it, with ``receiver.routes``), and
what holds them now: active silences (a broken link) and mute or active time intervals of the
route (a schedule: shown, not a fault)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..config import ScalingAlerts
from ..domain import Direction
from ..models import LABEL_SCALE, LABEL_SERVICE
from ..routes import TIMING_KEYS, RouteOpts, in_time_intervals, matching_routes, time_intervals
from ..silences import freeze_of
from ..timeutil import format_rfc3339
from .links import Link, broken, ok

_STEP = 60.0  # mute intervals are in minutes
_HORIZON = 8 * 86400.0  # a mute that lasts longer than this is reported as "more than a week"


@dataclass(frozen=True)
class AlertShape:
    """The labels a scaling alert of the service carries when it fires."""

    name: str
    direction: Direction
    labels: dict[str, str]

    def for_service(self, service: str) -> dict[str, str]:
        return {**self.labels, "alertname": self.name, LABEL_SERVICE: service, LABEL_SCALE: str(self.direction)}


def webhook_receivers(config: Mapping[str, Any], path: str) -> set[str]:
    """Receivers with a webhook whose URL path is the autoscaler's webhook path."""
    return {str(r.get("name")) for r in config.get("receivers") or []
            if any(urlsplit(str(w.get("url", ""))).path.rstrip("/") == path for w in r.get("webhook_configs") or [])}


def _timings(route: RouteOpts) -> str:
    return ", ".join(f"{k} {route.timings[k]}" for k in TIMING_KEYS)


def route_link(service: str, alerts: list[AlertShape], config: Mapping[str, Any], path: str,
               routes_test: str) -> Link:
    """Every scaling alert of the service lands on a receiver that posts to the webhook."""
    targets = webhook_receivers(config, path)
    landed: dict[str, list[str]] = {}  # where, with its timings -> the alerts that land there
    wrong = []
    for alert in alerts:
        try:
            routes = matching_routes(config, alert.for_service(service))
        except (ValueError, KeyError) as err:
            return broken("route", service, f"could not walk the live routing tree: {err}", "run amtool check-config on it")
        hits = [r for r in routes if r.receiver in targets]
        name = f"{alert.name or 'a scaling alert'} (scale={alert.direction})"
        if hits:
            landed.setdefault(f"-> {hits[0].receiver} ({_timings(hits[0])})", []).append(name)
        else:
            wrong.append(f"{name} -> {', '.join(r.receiver for r in routes)}")
    parts = [f"{', '.join(names)} {where}" for where, names in landed.items()]
    if wrong:
        have = ", ".join(sorted(targets)) or "none"
        return broken("route", service, f"{'; '.join(wrong)}: not a receiver with a webhook to {path} ({have})",
                      f"route scale=~\"up|down\" to the autoscaler's receiver in alertmanager.yml; check with {routes_test}")
    return ok("route", service, "; ".join(parts))


def _mute_end(now: float, holds: Any) -> str:
    t = now
    while t - now < _HORIZON:
        t += _STEP
        if not holds(t):
            return format_rfc3339(t - t % _STEP, micro=False)
    return "more than a week"


def _mutes(route: RouteOpts, config: Mapping[str, Any], now: float) -> str:
    def muted(at: float) -> bool:
        if route.mute_time_intervals and in_time_intervals(at, time_intervals(config, route.mute_time_intervals)):
            return True
        return bool(route.active_time_intervals) and not in_time_intervals(
            at, time_intervals(config, route.active_time_intervals))

    if not muted(now):
        return ""
    names = ", ".join(route.mute_time_intervals + route.active_time_intervals)
    return f"muted now by {names} until about {_mute_end(now, muted)}"


def silences_link(service: str, alerts: list[AlertShape], config: Mapping[str, Any],
                  silences: list[dict[str, Any]], now: float, alertmanager: str, scaling: ScalingAlerts) -> Link:
    """A silence freezes the service as the receiver judges it (``silences.freeze_of`` over
    ``scaling``, the configured scaling alerts and those Prometheus has loaded)."""
    freeze = freeze_of(silences, service, scaling)
    notes = []
    for alert in alerts:
        try:
            routes = matching_routes(config, alert.for_service(service))
            mutes = [m for m in (_mutes(r, config, now) for r in routes) if m]
        except (ValueError, KeyError) as err:
            return broken("silences", service, f"could not evaluate the time intervals: {err}",
                          "run amtool check-config on the live configuration")
        notes += [f"scale={alert.direction} {m} (a schedule)" for m in mutes]
    notes = list(dict.fromkeys(notes))
    if freeze is not None:
        held = "/".join(freeze.directions)
        return broken("silences", service, f"silenced ({held}) until {freeze.until} by {freeze.created_by or '?'}: "
                      f"{freeze.comment[:120]!r} (silence {', '.join(freeze.silence_ids)})" + "".join(f"; {n}" for n in notes),
                      f"when the freeze is over: autoscaler unfreeze {service} --alertmanager {alertmanager}")
    text = "no active silence holds its scaling alerts"
    return ok("silences", service, "; ".join([text, *notes]))
