"""The scaling signals Prometheus has loaded, read from its rules API (pure).

A signal is a rule group holding at least one alert with a ``scale`` label of ``up`` or
``down``. The records it needs are those its scaling alerts read, and the records those read,
down to the leaves: records that read no other record, only input series (cAdvisor, Traefik,
DCGM). Which service a series is about is its ``service`` label (the rules derive it from
cAdvisor's ``container_label_com_docker_swarm_service_name`` or Traefik's ``service``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..domain import Direction
from ..models import LABEL_SCALE, LABEL_SERVICE

_COMPARISON = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s*(>=|<=|>|<)\s*([0-9.eE+-]+)")
_SELECTOR_REGEX = re.compile(r'=~\s*"([^"]*)"')

# Per query: the service label's value -> the sample; "" for series without a service label.
Values = Mapping[str, Mapping[str, float]]


def _reads(query: str, name: str) -> bool:
    return re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", query) is not None


@dataclass(frozen=True)
class ScalingAlert:
    name: str
    direction: Direction
    labels: dict[str, str]  # the rule's static labels
    query: str
    duration: float  # its `for`, seconds
    health: str
    last_error: str
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


@dataclass(frozen=True)
class Signal:
    group: str
    file: str
    alerts: tuple[ScalingAlert, ...]
    records: dict[str, str]  # every record of the group -> its expression
    needed: tuple[str, ...]  # records the alerts read, leaves first

    def leaves(self) -> list[str]:
        return [r for r in self.needed if not any(_reads(self.records[r], other) for other in self.records if other != r)]

    def selectors(self, record: str) -> list[str]:
        """The regular expressions of a record's selectors (where the watched services are named)."""
        return _SELECTOR_REGEX.findall(self.records[record])

    def leaf_query(self, record: str) -> str:
        """The live evaluation of a leaf record, by service: is the input there now?"""
        return f"count by ({LABEL_SERVICE}) ({self.records[record]})"


def record_query(record: str) -> str:
    return f"max by ({LABEL_SERVICE}) ({record})"


def _needed(records: dict[str, str], queries: list[str]) -> tuple[str, ...]:
    """Records read by ``queries``, transitively, ordered so that a record comes after those it reads."""
    order: list[str] = []

    def visit(name: str, seen: tuple[str, ...]) -> None:
        if name in order or name in seen:
            return
        for other in records:
            if other != name and _reads(records[name], other):
                visit(other, (*seen, name))
        order.append(name)

    for query in queries:
        for name in records:
            if _reads(query, name):
                visit(name, ())
    return tuple(order)


def _alert(rule: Mapping[str, Any]) -> ScalingAlert | None:
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
        health=str(rule.get("health", "")), last_error=str(rule.get("lastError") or ""), states=states,
    )


def signals(rules_api: Mapping[str, Any]) -> list[Signal]:
    """Every loaded rule group with a scaling alert (the ``data`` of ``GET /api/v1/rules``)."""
    found = []
    for group in rules_api.get("groups") or []:
        rules = group.get("rules") or []
        alerts = tuple(a for a in (_alert(r) for r in rules if r.get("type") == "alerting") if a is not None)
        if not alerts:
            continue
        records = {str(r["name"]): str(r.get("query", "")) for r in rules if r.get("type") == "recording"}
        needed = _needed(records, [a.query for a in alerts])
        found.append(Signal(str(group.get("name", "")), str(group.get("file", "")), alerts, records, needed))
    return found


def queries(found: list[Signal]) -> list[str]:
    """Every query the Prometheus links need answered."""
    wanted: list[str] = []
    for signal in found:
        wanted += [signal.leaf_query(r) for r in signal.leaves()]
        wanted += [record_query(r) for r in signal.needed]
    return list(dict.fromkeys(wanted))


def fed(signal: Signal, values: Values) -> bool:
    """Whether every leaf of the signal has a series for some service: the deployment feeds it."""
    return all(values.get(signal.leaf_query(r)) for r in signal.leaves())
