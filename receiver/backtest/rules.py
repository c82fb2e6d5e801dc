"""The scaling alerts of a rule file, with their recording rules inlined, and Prometheus' range queries."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..domain import Direction
from ..models import ANNOTATION_DESIRED, LABEL_SCALE
from ..timeutil import parse_duration


def seconds(text: str | None, default: float = 0.0) -> float:
    return parse_duration(text) if text else default


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
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result
