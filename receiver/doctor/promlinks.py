"""The Prometheus links of one service (pure): input series, recording rules, alert rules.

Only the scaling alerts that apply (every record they read is fed, see signals.py) are held to
the service; the others are named as skipped. At least one scaling alert must apply.
"""

from __future__ import annotations

from .links import Link, broken, ok, skipped
from .signals import Definition, Rules, ScalingAlert, Values, filters, record_query

RULES_TODO = ("list the rule files under rule_files in prometheus.yml (the stack mounts rules/*.rules.yml "
              "under /etc/prometheus/rules/) and reload Prometheus")


def _has(values: Values, query: str, service: str) -> bool:
    found = values.get(query) or {}
    return service in found or "" in found


def _skipped(rules: Rules, values: Values) -> str:
    names = [a.name for a in rules.alerts if not rules.applies(a, values)]
    return f"; not fed, skipped: {', '.join(dict.fromkeys(names))}" if names else ""


def _applying(rules: Rules, values: Values) -> list[ScalingAlert]:
    return [a for a in rules.alerts if rules.applies(a, values)]


def _none_applies(link: str, service: str, rules: Rules) -> Link:
    """No scaling alert applies: the alert rules link says why when none is loaded, the input
    series link when none is fed; the links after them are not checked."""
    if not rules.alerts:
        if link == "alert_rules":
            return broken(link, service, "no alert rule with a scale label (up or down) is loaded in Prometheus", RULES_TODO)
        return skipped(link, service, "not checked: no scaling alert rule is loaded (see alert rules)")
    if link != "input_series":
        return skipped(link, service, "not checked: no scaling alert is fed (see input series)")
    leaves = {d.expr: d for a in rules.alerts for d in rules.inputs(a)}.values()
    selectors = ", ".join(dict.fromkeys(f'=~"{s}"' for d in leaves for s in d.selectors())) or "none"
    return broken(link, service, "no scaling alert is fed: the inputs of "
                  f"{', '.join(a.name for a in rules.alerts)} have no series at all, for any service",
                  "check that Prometheus scrapes cAdvisor (or Traefik, DCGM), that those targets are up, and that "
                  f"the rules' service selectors ({selectors}) match the Swarm service names")


def input_series_link(service: str, rules: Rules, values: Values) -> Link:
    applying = _applying(rules, values)
    if not applying:
        return _none_applies("input_series", service, rules)
    leaves: dict[tuple[str, str], Definition] = {}
    for alert in applying:
        leaves.update({(d.record, d.expr): d for d in rules.inputs(alert, values)})
    have = [d for d in leaves.values() if service in d.services(values) or "" in d.services(values)]
    missing = [d for d in leaves.values() if d not in have]
    checked = "; ".join(f"{d.file}: {d.record} evaluated now has series for {service}" for d in have)
    if missing:
        selectors = ", ".join(f'=~"{s}"' for d in missing for s in d.selectors()) or "its selectors"
        lacking = ", ".join(f"{d.file}: {d.record}" for d in missing)
        return broken("input_series", service, f"no input series for {service} now ({lacking}, evaluated live)"
                      + (f"; {checked}" if checked else ""),
                      f"check that the rule's selector {selectors} matches {service} and that its exporter is "
                      "scraped and fresh (Prometheus /targets)")
    return ok("input_series", service, checked + _skipped(rules, values))


def recording_rules_link(service: str, rules: Rules, values: Values) -> Link:
    """The records the applying alerts read have series for the service. One that is absent but
    built with a filter (``and``, ``unless``, a comparison) is held back by its condition: shown,
    not a fault (say, ``swarm_service:cpu_signal:complete`` while a cAdvisor target is down)."""
    applying = _applying(rules, values)
    if not applying:
        return _none_applies("recording_rules", service, rules)
    missing: list[str] = []
    held: list[str] = []
    read = 0
    for alert in applying:
        for record in rules.reads(alert.query):
            if _has(values, record_query(record), service):
                read += 1
                continue
            construct = next((f for d in rules.records[record] if (f := filters(d.expr))), None)
            if construct is None:
                missing.append(f"{alert.name} reads {record}")
            else:
                held.append(f"{record} absent for {service} now, held back by its `{construct}`: {alert.name} cannot fire")
    if missing:
        return broken("recording_rules", service, f"no series for {service}: {'; '.join(missing)}",
                      "query those records in Prometheus, and the records they read, with service=\"" + service + "\"")
    return ok("recording_rules", service, "; ".join(
        [f"{read} records the fed scaling alerts read have series for {service}", *dict.fromkeys(held)]))


def _fmt(value: float | None) -> str:
    return "no value" if value is None else f"{value:.3g}"


def _state(service: str, alert: ScalingAlert, values: Values) -> str:
    state, value = alert.states.get(service, ("inactive", None))
    threshold = alert.threshold()
    if threshold is None:
        return f"{alert.name} (scale={alert.direction}) {state}, for {alert.duration:g}s"
    record, op, limit = threshold
    if value is None:
        value = (values.get(record_query(record)) or {}).get(service)
    return f"{alert.name} (scale={alert.direction}) {state}, {_fmt(value)}, fires when {op} {limit:g} for {alert.duration:g}s"


def alert_rules_link(service: str, rules: Rules, values: Values) -> Link:
    failing = [a for a in rules.alerts if a.health not in ("ok", "unknown") or a.last_error]
    if failing:
        return broken("alert_rules", service, "; ".join(f"{a.name}: {a.health}: {a.last_error[:160]}" for a in failing),
                      f"fix the expression of {failing[0].name} in {failing[0].file}")
    applying = _applying(rules, values)
    if not applying:
        return _none_applies("alert_rules", service, rules)
    return ok("alert_rules", service, "; ".join(_state(service, a, values) for a in applying) + _skipped(rules, values))
