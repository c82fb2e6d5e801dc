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


Recorded = dict[str, list[tuple[str, dict[str, str]]]]  # name -> (expression, static labels) of each rule recording it
_REFERENCE_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"\s*')


def _with_labels(expr: str, labels: dict[str, str]) -> str:
    """``expr`` with the static labels its recording rule adds."""
    for name, value in sorted(labels.items()):
        expr = f'label_replace({expr}, "{name}", "{value}", "", "")'
    return expr


def _inlined(name: str, matchers: str | None, defs: list[tuple[str, dict[str, str]]]) -> str:
    wanted: dict[str, str] = {}
    for part in (matchers or "").split(","):
        if not part.strip():
            continue
        m = _REFERENCE_MATCHER.fullmatch(part)
        if m is None:
            raise ValueError(f"cannot inline {name}{{{matchers}}}: only label=\"value\" matchers can be inlined")
        wanted[m.group(1)] = m.group(2)
    chosen = []
    for expr, labels in defs:
        if any(label not in labels for label in wanted):
            raise ValueError(f"cannot inline {name}{{{matchers}}}: a matcher on a label its rule does not set")
        if all(labels[label] == value for label, value in wanted.items()):
            chosen.append(_with_labels(f"({expr.strip()})", labels))
    return "(" + " or ".join(chosen) + ")" if chosen else "(vector(0) < -1)"  # an empty vector


def inline_recording_rules(expr: str, recorded: Recorded) -> str:
    """Replace each reference to a recorded series by the expressions recording it (their static
    labels added, several rules of one name joined with ``or``; equality matchers on those static
    labels select among them), recursively."""
    for _ in range(20):
        changed = False
        for name, defs in recorded.items():
            pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:])(?:\s*\{{([^}}]*)\}})?")
            def inline(m: re.Match[str], name: str = name, defs: list[tuple[str, dict[str, str]]] = defs) -> str:
                return _inlined(name, m.group(1), defs)

            new = pattern.sub(inline, expr)
            if new != expr:
                expr, changed = new, True
        if not changed:
            return expr
    raise ValueError("recording rules nest too deep to inline")


def scaling_rules(paths: str | Path | list[str]) -> list[ScalingRule]:
    """The scaling alerts of the rule files, with the recording rules of all of them inlined."""
    files: list[str | Path] = [paths] if isinstance(paths, (str, Path)) else list(paths)
    docs = [yaml.safe_load(Path(p).read_text()) for p in files]
    recorded: Recorded = {}
    for doc in docs:
        for g in doc["groups"]:
            for r in g["rules"]:
                if "record" in r:
                    recorded.setdefault(r["record"], []).append((r["expr"], dict(r.get("labels") or {})))
    rules = []
    for doc in docs:
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
        raise ValueError(f"{', '.join(map(str, files))}: no alert with a scale label of up or down")
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
