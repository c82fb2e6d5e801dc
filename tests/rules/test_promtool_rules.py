"""The shipped Prometheus rules pass promtool, and their promtool tests are sound.

promtool does the real work (rules/tests/*.test.yml hold the cases: `for` boundaries,
short spikes, desired_replicas, absent and stale series). These tests run it on every file,
show its output when it fails, and check what promtool cannot: that every rule group has
its own test file, every alert is exercised, tests evaluate at the production interval, and
that the tests catch a changed `for`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.render import parse_duration_ms, render_rules

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "rules"
TESTS_DIR = RULES_DIR / "tests"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*.test.yml"))
SCALE_LABEL_VALUES = {"up", "down"}
CONTRACT_ANNOTATIONS = {"summary", "description", "desired_replicas"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _promtool(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: scripts/setup.sh installs the Debian package prometheus"
    return subprocess.run(
        [promtool, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _groups() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, group) for path in RULE_FILES for group in _load(path)["groups"]]


def _alerts() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, rule) for path, group in _groups() for rule in group["rules"] if "alert" in rule]


def _test_file_for(group_name: str) -> Path:
    return TESTS_DIR / f"{group_name}.test.yml"


def test_there_are_rule_files_and_promtool_test_files_to_check() -> None:
    assert RULE_FILES, f"no *.rules.yml in {RULES_DIR}"
    assert TEST_FILES, f"no *.test.yml in {TESTS_DIR}"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules_accepts_the_rule_file(rule_file: Path) -> None:
    result = _promtool("check", "rules", rule_file)
    assert result.returncode == 0, f"promtool check rules {rule_file.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules_passes_the_test_file(test_file: Path) -> None:
    result = _promtool("test", "rules", test_file)
    assert result.returncode == 0, f"promtool test rules {test_file.name}:\n{result.stdout}{result.stderr}"


def test_every_rule_group_has_its_own_promtool_test_file() -> None:
    for rule_file, group in _groups():
        test_file = _test_file_for(group["name"])
        assert test_file.is_file(), f"group {group['name']} of {rule_file.name} has no {test_file.relative_to(REPO)}"
        loaded = {(test_file.parent / name).resolve() for name in _load(test_file)["rule_files"]}
        assert rule_file.resolve() in loaded, f"{test_file.name} does not load {rule_file.name}"


def test_every_promtool_test_evaluates_at_the_interval_of_its_rule_group() -> None:
    for _, group in _groups():
        test_file = _test_file_for(group["name"])
        assert _load(test_file)["evaluation_interval"] == group["interval"], (
            f"{test_file.name} evaluates every {_load(test_file)['evaluation_interval']}, "
            f"the group {group['name']} every {group['interval']}: the `for` boundaries would not be production's"
        )


def test_every_promtool_test_is_named_as_a_sentence() -> None:
    for test_file in TEST_FILES:
        for index, case in enumerate(_load(test_file)["tests"]):
            name = case.get("name", "")
            assert len(name.split()) >= 5, f"{test_file.name} test #{index} is not named as a sentence: {name!r}"


def test_every_alert_is_exercised_by_a_promtool_test() -> None:
    tested = {
        check["alertname"]
        for test_file in TEST_FILES
        for case in _load(test_file)["tests"]
        for check in case.get("alert_rule_test", [])
    }
    untested = sorted(rule["alert"] for _, rule in _alerts() if rule["alert"] not in tested)
    assert not untested, f"alerts without a promtool test: {untested}"


def test_every_scaling_alert_carries_the_receivers_label_contract() -> None:
    scaling = [(path, rule) for path, rule in _alerts() if "scale" in rule.get("labels", {})]
    assert {rule["labels"]["scale"] for _, rule in scaling} == SCALE_LABEL_VALUES
    for path, rule in scaling:
        assert rule["labels"]["scale"] in SCALE_LABEL_VALUES, f"{path.name} {rule['alert']}"
        missing = CONTRACT_ANNOTATIONS - set(rule.get("annotations", {}))
        assert not missing, f"{path.name} {rule['alert']} lacks the annotations {sorted(missing)}"


def _shortened_by_one_evaluation(group_interval: str, duration: str) -> str:
    return f"{parse_duration_ms(duration) - parse_duration_ms(group_interval)}ms"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_the_promtool_tests_fail_when_a_for_is_shortened_by_one_evaluation(rule_file: Path) -> None:
    groups = _load(rule_file)["groups"]
    overrides = {
        rule["alert"]: _shortened_by_one_evaluation(group["interval"], rule["for"])
        for group in groups
        for rule in group["rules"]
        if "scale" in rule.get("labels", {})
    }
    with tempfile.TemporaryDirectory(prefix="rules-mutant-") as tmp:
        mutant_dir = Path(tmp)
        (mutant_dir / "tests").mkdir()
        for other in RULE_FILES:  # test files load the other rule files too (the signals are combined)
            shutil.copy(other, mutant_dir)
        (mutant_dir / rule_file.name).write_text(render_rules(rule_file, for_overrides=overrides), encoding="utf-8")
        for group in groups:
            shutil.copy(_test_file_for(group["name"]), mutant_dir / "tests")
        results = [_promtool("test", "rules", test_file) for test_file in sorted((mutant_dir / "tests").iterdir())]
    output = "".join(result.stdout + result.stderr for result in results)
    assert any(result.returncode != 0 for result in results), f"no test noticed {overrides}:\n{output}"
    for alert in overrides:
        assert f"alertname: {alert}," in output, f"no test failed on {alert} with {overrides[alert]}:\n{output}"
