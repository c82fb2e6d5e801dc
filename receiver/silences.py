"""Freezes: Alertmanager silences that hold a service's scaling alerts.

A silence drops alerts before they reach the receiver, so a frozen service simply hears
nothing. To make a forgotten freeze visible, the receiver reads the active silences
(Alertmanager API v2) and reports, per configured service, whether and until when its
scaling alerts are silenced. ``autoscaler freeze`` and ``unfreeze`` create and expire them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .domain import Direction
from .matchers import Matcher
from .models import LABEL_SCALE, LABEL_SERVICE
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


def silenced_directions(silence: dict[str, Any], service: str) -> set[str]:
    """The scaling directions of ``service`` this silence holds.

    Matchers on ``service`` and ``scale`` are evaluated; a matcher on any other label (an
    alert name, say) is taken to match, since some scaling alert of the service may carry it:
    a silence of ``alertname=OllamaHighCPU, service=S`` freezes S's CPU scale-ups.
    """
    directions = set()
    for direction in Direction:
        labels = {LABEL_SERVICE: service, LABEL_SCALE: str(direction)}
        matchers = silence.get("matchers") or []
        if not any(m.get("name") == LABEL_SERVICE for m in matchers):
            continue  # a silence that names no service is not a freeze of this one
        if all(Matcher.from_api(m).matches(labels) for m in matchers if m.get("name") in labels):
            directions.add(str(direction))
    return directions


def is_active(silence: dict[str, Any]) -> bool:
    return (silence.get("status") or {}).get("state") == "active"


def freeze_of(silences: list[dict[str, Any]], service: str) -> Freeze | None:
    """Pure: how the active silences freeze ``service``, or None."""
    holding = [(s, silenced_directions(s, service)) for s in silences if is_active(s)]
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
