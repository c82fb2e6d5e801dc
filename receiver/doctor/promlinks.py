"""The Prometheus links of one service (pure): input series, recording rules, alert rules.

A signal whose leaves have no series at all, for any service, is not fed by this deployment
(rules loaded for an exporter that is not there, such as the GPU rules without DCGM): it is
shown as skipped. At least one signal must be fed, and every fed signal must hold.
"""

from __future__ import annotations

from dataclasses import replace

from .links import Link, broken, ok, skipped
from .signals import Signal, Values, fed, record_query

RULES_TODO = ("list the rule files under rule_files in prometheus.yml (the stack mounts rules/*.rules.yml "
              "under /etc/prometheus/rules/) and reload Prometheus")


def _has(values: Values, query: str, service: str) -> bool:
    found = values.get(query) or {}
    return service in found or "" in found


def _where(signal: Signal) -> str:
    return f"{signal.group} ({signal.file.rsplit('/', 1)[-1]})"


def _combine(link: str, service: str, parts: list[tuple[bool, str, str]], none_fed: str) -> Link:
    """One line for a link from (holds, checked, todo) per fed signal."""
    if not parts:
        return broken(link, service, none_fed, RULES_TODO)
    checked = "; ".join(text for _, text, _ in parts)
    todos = [todo for holds, _, todo in parts if not holds]
    return broken(link, service, checked, "; ".join(todos)) if todos else ok(link, service, checked)


def input_series_link(service: str, found: list[Signal], values: Values) -> Link:
    if not found:
        return broken("input_series", service, "no rule with a scale label is loaded: no input to look for", RULES_TODO)
    parts, unfed = [], []
    for signal in found:
        if not fed(signal, values):
            unfed.append(signal.group)
            continue
        missing = [r for r in signal.leaves() if not _has(values, signal.leaf_query(r), service)]
        if not missing:
            parts.append((True, f"{_where(signal)}: {', '.join(signal.leaves())} evaluated now have series for {service}", ""))
            continue
        selectors = ", ".join(f'=~"{s}"' for r in missing for s in signal.selectors(r)) or "its selectors"
        parts.append((False, f"{_where(signal)}: no input series for {service} now ({', '.join(missing)} evaluated live)",
                      f"check that the rule's selector {selectors} matches {service} and that its exporter is "
                      "scraped and fresh (Prometheus /targets)"))
    line = _combine("input_series", service, parts, f"no scaling signal is fed: {', '.join(unfed)} have no input series at all")
    if unfed and parts:
        line = replace(line, checked=line.checked + f"; not fed, skipped: {', '.join(unfed)}")
    return line


def recording_rules_link(service: str, found: list[Signal], values: Values) -> Link:
    parts = []
    for signal in (s for s in found if fed(s, values)):
        missing = [r for r in signal.needed if not _has(values, record_query(r), service)]
        if not missing:
            parts.append((True, f"{signal.group}: the {len(signal.needed)} records the alerts read have series for {service}", ""))
        else:
            parts.append((False, f"{signal.group}: {missing[0]} has no series for {service}",
                          f"query {missing[0]} in Prometheus and the records it reads; a record that is absent by design "
                          "(an incomplete signal) also keeps its alert from firing"))
    if not found:
        return skipped("recording_rules", service, "no scaling rule is loaded")
    return _combine("recording_rules", service, parts, "no scaling signal is fed (see input series)")


def _fmt(value: float | None) -> str:
    return "no value" if value is None else f"{value:.3g}"


def _alert_text(service: str, signal: Signal, values: Values) -> list[tuple[bool, str, str]]:
    parts = []
    for alert in signal.alerts:
        if alert.health != "ok" or alert.last_error:
            parts.append((False, f"{alert.name}: health {alert.health or 'unknown'}: {alert.last_error[:160]}",
                          f"fix the expression of {alert.name} in {signal.file}"))
            continue
        state, value = alert.states.get(service, ("inactive", None))
        threshold = alert.threshold()
        if threshold is not None:
            record, op, limit = threshold
            if value is None:
                value = (values.get(record_query(record)) or {}).get(service)
            rule = f"fires when {op} {limit:g} for {alert.duration:g}s"
        else:
            rule = f"for {alert.duration:g}s"
        parts.append((True, f"{alert.name} (scale={alert.direction}) {state}, {_fmt(value)}, {rule}", ""))
    return parts


def alert_rules_link(service: str, found: list[Signal], values: Values) -> Link:
    parts = [p for signal in found if fed(signal, values) for p in _alert_text(service, signal, values)]
    if not found:
        return broken("alert_rules", service, "no alert rule with a scale label (up or down) is loaded in Prometheus",
                      RULES_TODO)
    return _combine("alert_rules", service, parts, "the scaling alerts of no fed signal (see input series)")
