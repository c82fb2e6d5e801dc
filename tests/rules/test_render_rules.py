"""Rendering the shipped rules for a fast loop changes only what was asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.render import SIGNAL_SWITCH, render_rules

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((REPO / "rules").glob("*.rules.yml"))


def _load(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_rendering_changes_only_for_interval_ranges_and_the_service_selector(rule_file: Path) -> None:
    text = rule_file.read_text(encoding="utf-8")
    shipped = _load(text)
    alerts = [rule["alert"] for group in shipped["groups"] for rule in group["rules"] if "alert" in rule]
    rendered = _load(
        render_rules(
            rule_file,
            for_overrides={name: "7s" for name in alerts},
            interval="2s",
            range_overrides={"1m": "9s"} if "[1m]" in text else None,
            selectors={"ollama_ollama": "loop_svc"},
        )
    )

    for group in rendered["groups"]:
        assert group["interval"] == "2s"
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["for"] == "7s"
                rule["for"] = "restored"
            rule["expr"] = rule["expr"].replace("[9s]", "[1m]").replace('=~"loop_svc', '=~"ollama_ollama')
            if rule.get("labels", {}).get("service") == "loop_svc":
                rule["labels"]["service"] = "ollama_ollama"
        group["interval"] = "restored"
    for group in shipped["groups"]:
        group["interval"] = "restored"
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = "restored"
    assert rendered == shipped


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"for_overrides": {"NoSuchAlert": "1s"}}, id="unknown-alert"),
        pytest.param({"range_overrides": {"17m": "1s"}}, id="unknown-range"),
        pytest.param({"selectors": {"no_such_service": "x"}}, id="unknown-selector"),
    ],
)
def test_rendering_refuses_an_override_that_the_shipped_file_has_nowhere_to_apply(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="ollama-cpu.rules.yml"):
        render_rules(REPO / "rules" / "ollama-cpu.rules.yml", **overrides)


def test_rendering_keeps_only_the_switch_records_of_the_signals_asked_for() -> None:
    scaling = REPO / "rules" / "ollama-scaling.rules.yml"
    rendered = _load(render_rules(scaling, selectors={"ollama_ollama": "loop_svc"}, signals=["cpu"]))
    switches = [r["labels"] for g in rendered["groups"] for r in g["rules"] if r.get("record") == SIGNAL_SWITCH]
    assert switches == [{"service": "loop_svc", "signal": "cpu"}]
    with pytest.raises(ValueError, match="no signal switch for warp"):
        render_rules(scaling, signals=["cpu", "warp"])
