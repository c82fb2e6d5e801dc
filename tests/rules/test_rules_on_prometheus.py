"""The shipped rules, rendered for a fast loop, load and evaluate in a real Prometheus."""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit import render_rules, start_prometheus

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((REPO / "rules").glob("*.rules.yml"))
FAST_INTERVAL = "1s"
FAST_FOR = "3s"
PROMETHEUS_CONFIG = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"

pytestmark = pytest.mark.loop


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _alert_names(path: Path) -> list[str]:
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def _wait_for_evaluated_groups(url: str, names: set[str], timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    groups: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        groups = _get_json(f"{url}/api/v1/rules")["data"]["groups"]
        evaluated = {g["name"] for g in groups if all(r.get("health") != "unknown" for r in g["rules"])}
        if names <= evaluated:
            return groups
        time.sleep(0.2)
    raise AssertionError(f"Prometheus did not evaluate {sorted(names)} within {timeout}s: {groups}")


def test_the_rendered_rules_load_into_prometheus_with_the_shortened_for_and_evaluate_without_errors() -> None:
    rule_texts = [
        render_rules(path, interval=FAST_INTERVAL, for_overrides={name: FAST_FOR for name in _alert_names(path)})
        for path in RULE_FILES
    ]
    expected_groups = {
        group["name"] for path in RULE_FILES for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    }
    with tempfile.TemporaryDirectory(prefix="prometheus-rules-") as workdir:
        with start_prometheus(PROMETHEUS_CONFIG, rule_texts, workdir) as prometheus:
            groups = _wait_for_evaluated_groups(prometheus.url, expected_groups)
            log = prometheus.log()
        assert prometheus.process.returncode is not None, "Prometheus was not reaped"
    assert {g["name"] for g in groups} == expected_groups
    for group in groups:
        assert group["interval"] == 1, group["name"]
        for rule in group["rules"]:
            assert rule["health"] == "ok", f"{group['name']} {rule['name']}: {rule.get('lastError')}\n{log}"
            if rule["type"] == "alerting":
                assert rule["duration"] == 3, f"{rule['name']} kept its shipped `for`"
