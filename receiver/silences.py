"""Freezes: Alertmanager silences that hold a service's scaling alerts.

A silence drops alerts before they reach the receiver, so a frozen service simply hears
nothing. To make a forgotten freeze visible, the receiver reads the active silences
(Alertmanager API v2) and reports, per configured service, whether and until when its
scaling alerts are silenced. ``autoscaler freeze`` and ``unfreeze`` create and expire them.

A silence freezes direction D of service S when it mutes *at least one* scaling alert of S
in D: its matchers are evaluated, as Alertmanager does, against the labels such an alert
carries (``alertname``, ``service``, ``scale`` and ``ScalingAlerts.labels``; any other label
is absent, the empty string). A silence on one alert of several still stops that signal, so
it is reported; a silence on alerts that are not scaling alerts, or on labels the scaling
alerts do not carry, is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ScalingAlerts
from .domain import Direction
from .matchers import Matcher
from .models import LABEL_ALERTNAME, LABEL_SCALE, LABEL_SERVICE
from .timeutil import parse_rfc3339


@dataclass(frozen=True)
class Freeze:
    directions: tuple[str, ...]  # "down", "up" or both
    until: str  # the latest endsAt of the silences that freeze the service
    comment: str
    created_by: str
    silence_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"directions": list(self.directions), "until": self.until, "comment": self.comment,
                "created_by": self.created_by, "silences": list(self.silence_ids)}


def scaling_label_sets(service: str, direction: Direction, alerts: ScalingAlerts) -> list[dict[str, str]]:
    """The label sets of ``service``'s scaling alerts in ``direction``, as Alertmanager sees them."""
    names = alerts.up if direction is Direction.UP else alerts.down
    return [{**alerts.labels, LABEL_ALERTNAME: name, LABEL_SERVICE: service, LABEL_SCALE: str(direction)}
            for name in names]


def silenced_directions(silence: dict[str, Any], service: str, alerts: ScalingAlerts) -> set[str]:
    """The scaling directions of ``service`` in which this silence mutes at least one alert."""
    matchers = [Matcher.from_api(m) for m in silence.get("matchers") or []]
    if not matchers:
        return set()  # Alertmanager refuses such a silence; it mutes nothing
    return {str(direction) for direction in Direction
            if any(all(m.matches(labels) for m in matchers)
                   for labels in scaling_label_sets(service, direction, alerts))}


def is_active(silence: dict[str, Any]) -> bool:
    return (silence.get("status") or {}).get("state") == "active"


def freeze_of(silences: list[dict[str, Any]], service: str, alerts: ScalingAlerts) -> Freeze | None:
    """Pure: how the active silences freeze ``service``, or None."""
    holding = [(s, silenced_directions(s, service, alerts)) for s in silences if is_active(s)]
    holding = [(s, d) for s, d in holding if d]
    if not holding:
        return None
    latest = max(holding, key=lambda sd: _time(sd[0].get("endsAt", "")))[0]
    return Freeze(
        directions=tuple(sorted(set().union(*(d for _, d in holding)))),
        until=latest.get("endsAt", ""),
        comment=latest.get("comment", ""),
        created_by=latest.get("createdBy", ""),
        silence_ids=tuple(s.get("id", "") for s, _ in holding),
    )


def _time(value: str) -> float:
    try:
        return parse_rfc3339(value)
    except ValueError:
        return 0.0


def freeze_matchers(service: str) -> list[dict[str, Any]]:
    """The matchers of a freeze made by ``autoscaler freeze``: both directions of one service."""
    return [
        {"name": LABEL_SERVICE, "value": service, "isRegex": False, "isEqual": True},
        {"name": LABEL_SCALE, "value": "up|down", "isRegex": True, "isEqual": True},
    ]


def _matcher_key(m: dict[str, Any]) -> tuple[str, str, bool, bool]:
    matcher = Matcher.from_api(m)
    return matcher.name, matcher.value, matcher.regex, matcher.equal


def is_freeze_of(silence: dict[str, Any], service: str) -> bool:
    """Whether the silence's matchers are exactly those of ``autoscaler freeze service`` (in any
    order): the only silences ``unfreeze`` expires. ``amtool silence add service=S scale=~"up|down"``
    makes the same."""
    return sorted(map(_matcher_key, silence.get("matchers") or [])) == sorted(map(_matcher_key, freeze_matchers(service)))


def describe(silence: dict[str, Any]) -> str:
    """One line naming a silence: its id, matchers, end, author and comment."""
    matchers = ", ".join(str(Matcher.from_api(m)) for m in silence.get("matchers") or [])
    return (f"{silence.get('id', '?')} {{{matchers}}} until {silence.get('endsAt', '?')} "
            f"by {silence.get('createdBy', '?')!r}: {silence.get('comment', '')!r}")
