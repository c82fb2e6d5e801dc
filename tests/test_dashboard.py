"""The Grafana dashboard parses, and every query names a metric the project exports or records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from receiver.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "autoscaler-dashboard.json"
PROMETHEUS_BUILTINS = {"ALERTS"}  # Prometheus' own series of the alerting rules' states
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def exported_metrics() -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    names = set()
    for family in registry.collect():
        kinds = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}[family.type]
        names.update(family.name + suffix for suffix in kinds)
    return names


def recorded_series() -> set[str]:
    return {
        rule["record"]
        for path in (ROOT / "rules").glob("*.rules.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"] if "record" in rule
    }


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: not functions, keywords, label names or durations."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    tokens = re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?", text)
    return {t.group(0) for t in tokens if not t.group(1) and t.group(0) not in KEYWORDS}


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_the_dashboard_has_the_panels_operators_asked_for():
    titles = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]}
    for wanted in ("Decisions by reason", "Replicas against utilisation", "Scaling alerts firing",
                   "Docker API errors", "Frozen services (Alertmanager silences)"):
        assert wanted in titles


def test_every_dashboard_query_names_a_metric_the_project_exports_or_records():
    known = exported_metrics() | recorded_series() | PROMETHEUS_BUILTINS
    exprs = queries()
    assert len(exprs) >= 10
    used = set()
    for expr in exprs:
        # Grafana's label_values(METRIC, LABEL): only the first argument is a metric.
        expr = re.sub(r"label_values\(\s*([^,]+),[^)]*\)", r"\1", expr)
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= known, f"{expr!r} names {names - known}"
        used |= names
    assert {"autoscaler_decisions_total", "autoscaler_frozen", "autoscaler_docker_errors_total"} <= used


def test_the_metric_name_check_would_catch_a_typo():
    assert metric_names('sum by (reason) (rate(autoscaler_decisionz_total{service="x"}[5m]))') == {"autoscaler_decisionz_total"}
    assert "autoscaler_decisionz_total" not in exported_metrics()
