"""The scaling alerts Prometheus has loaded and the records they read, from its rules API (pure).

A scaling alert carries a ``scale`` label of ``up`` or ``down``. The records it reads are
followed through every loaded group, down to the leaves: definitions that read no record, only
input series (cAdvisor, Traefik, DCGM) or constants. A record may be defined more than once (one
definition per signal file): it is fed when any of its definitions is. A leaf is fed when its
expression, evaluated now, has a series for some service; an alert applies when every record it
reads is fed. So rules loaded for an exporter the deployment does not have (the GPU rules
without DCGM) are skipped, not failed. Which service a series is about is its ``service`` label.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..domain import Direction
from ..models import LABEL_SCALE, LABEL_SERVICE

_COMPARISON = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s*(>=|<=|>|<)\s*([0-9.eE+-]+)")
_SELECTOR_REGEX = re.compile(r'=~\s*"([^"]*)"')
_BRACES = re.compile(r"\{[^}]*\}")
# Set operators and comparisons without `bool` drop series: a record built with one may be
# absent by design (an incomplete signal, nothing idle), not because a rule is wrong.
_FILTER = re.compile(r"\b(?:and|unless)\b|(?:==|!=|>=|<=|>|<)(?!\s*bool\b)")

# Per query: the service label's value -> the sample; "" for series without a service label.
Values = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class Definition:
    record: str
    expr: str
    labels: dict[str, str]  # the rule's static labels
    file: str

    def query(self) -> str:
        """The live evaluation of a leaf, by service: is its input there now?"""
        return f"count by ({LABEL_SERVICE}) ({self.expr})"

    def services(self, values: Values) -> set[str]:
        found = set(values.get(self.query()) or {})
        return {self.labels[LABEL_SERVICE]} if found and LABEL_SERVICE in self.labels else found

    def selectors(self) -> list[str]:
        """The regular expressions of its selectors (where the watched services are named)."""
        return _SELECTOR_REGEX.findall(self.expr)


@dataclass(frozen=True)
class ScalingAlert:
    name: str
    direction: Direction
    labels: dict[str, str]
    query: str
    duration: float  # its `for`, seconds
    health: str
    last_error: str
    file: str
    states: dict[str, tuple[str, float | None]]  # service -> (pending | firing, value)

    def threshold(self) -> tuple[str, str, float] | None:
        """(record, operator, threshold) of an expression that starts ``record > 0.7``; None otherwise."""
        found = _COMPARISON.match(self.query)
        if found is None:
            return None
        try:
            return found.group(1), found.group(2), float(found.group(3))
        except ValueError:
            return None


def _reads(query: str, name: str) -> bool:
    return re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", query) is not None


@dataclass(frozen=True)
class Rules:
    alerts: tuple[ScalingAlert, ...]
    records: dict[str, list[Definition]] = field(default_factory=dict)

    def reads(self, expr: str) -> list[str]:
        return [name for name in self.records if _reads(expr, name)]

    def leaves(self) -> list[Definition]:
        return [d for defs in self.records.values() for d in defs if not self.reads(d.expr)]

    def fed(self, record: str, values: Values, seen: frozenset[str] = frozenset()) -> bool:
        if record in seen:
            return False
        return any(self._definition_fed(d, values, seen | {record}) for d in self.records.get(record, []))

    def _definition_fed(self, definition: Definition, values: Values, seen: frozenset[str]) -> bool:
        read = self.reads(definition.expr)
        if not read:
            return bool(values.get(definition.query()))
        return all(self.fed(r, values, seen) for r in read)

    def applies(self, alert: ScalingAlert, values: Values) -> bool:
        return all(self.fed(r, values) for r in self.reads(alert.query))

    def inputs(self, alert: ScalingAlert, values: Values | None = None) -> list[Definition]:
        """The leaves an alert reads: with ``values``, the fed ones through fed definitions only."""
        found: list[Definition] = []
        todo, done = list(self.reads(alert.query)), set()
        while todo:
            record = todo.pop()
            if record in done:
                continue
            done.add(record)
            for definition in self.records.get(record, []):
                read = self.reads(definition.expr)
                if not read and (values is None or values.get(definition.query())):
                    found.append(definition)
                elif read and (values is None or self._definition_fed(definition, values, frozenset({record}))):
                    todo += read
        return found


def _alert(rule: Mapping[str, Any], file: str) -> ScalingAlert | None:
    labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
    if labels.get(LABEL_SCALE) not in {d.value for d in Direction}:
        return None
    states: dict[str, tuple[str, float | None]] = {}
    for alert in rule.get("alerts") or []:
        service = (alert.get("labels") or {}).get(LABEL_SERVICE)
        if service:
            try:
                value: float | None = float(alert.get("value"))
            except (TypeError, ValueError):
                value = None
            states[service] = (str(alert.get("state", "")), value)
    return ScalingAlert(
        name=str(rule.get("name", "")), direction=Direction(labels[LABEL_SCALE]), labels=labels,
        query=str(rule.get("query", "")), duration=float(rule.get("duration") or 0),
        health=str(rule.get("health", "")), last_error=str(rule.get("lastError") or ""), file=file, states=states,
    )


def rules_of(rules_api: Mapping[str, Any]) -> Rules:
    """The scaling alerts and every record (``data`` of ``GET /api/v1/rules``)."""
    alerts: list[ScalingAlert] = []
    records: dict[str, list[Definition]] = {}
    for group in rules_api.get("groups") or []:
        file = str(group.get("file", "")).rsplit("/", 1)[-1]
        for rule in group.get("rules") or []:
            if rule.get("type") == "alerting":
                alert = _alert(rule, file)
                if alert is not None:
                    alerts.append(alert)
            elif rule.get("type") == "recording":
                labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
                name = str(rule["name"])
                records.setdefault(name, []).append(Definition(name, str(rule.get("query", "")), labels, file))
    return Rules(tuple(alerts), records)


def filters(expr: str) -> str | None:
    """The first construct of ``expr`` that drops series (``and``, ``unless``, a comparison), or None."""
    found = _FILTER.search(_BRACES.sub("{}", expr))
    return found.group(0) if found else None


def record_query(record: str) -> str:
    return f"max by ({LABEL_SERVICE}) ({record})"


def queries(rules: Rules) -> list[str]:
    """Every query the Prometheus links need answered: each leaf evaluated live, each record."""
    wanted = [d.query() for d in rules.leaves()] + [record_query(r) for r in rules.records]
    return list(dict.fromkeys(wanted))
