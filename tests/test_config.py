"""Configuration loading and ``autoscaler check-config``: every problem with its YAML path."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from receiver.config import (
    ConfigError,
    load_config,
    parse_config,
    parse_duration,
    read_token,
)

GOOD = textwrap.dedent(
    """
    listen: "127.0.0.1:9090"
    docker:
      host: "unix:///var/run/docker.sock"
      timeout: 10s
    dry_run: false
    services:
      ollama_ollama:
        min_replicas: 1
        max_replicas: 4
        scale_up_step: 1
        scale_down_step: 1
        scale_up_cooldown: 2m
        scale_down_cooldown: 5m
    """
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("2m", 120), ("1h", 3600), ("1h30m", 5400), ("500ms", 0.5), (45, 45), ("12", 12), (0, 0)],
)
def test_durations_accept_units_or_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2 minutes", "m", "-5", "1x", "", True, None, "5m3"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_documented_example_loads(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text(GOOD)
    config = load_config(path)
    policy = config.services["ollama_ollama"]
    assert (policy.scale_up_cooldown, policy.scale_down_cooldown) == (120, 300)
    assert config.docker.timeout == 10
    assert config.max_body_bytes == 1024 * 1024


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"services": {"s": {"max_replicas": 4, "max_replica": 3}}}, "services.s.max_replica: Extra inputs are not permitted"),
        ({"services": {"s": {"min_replicas": 5, "max_replicas": 4}}}, "services.s: min_replicas (5) is above max_replicas (4)"),
        ({"services": {"s": {"max_replicas": 4, "scale_up_cooldown": "soon"}}}, "services.s.scale_up_cooldown: invalid duration 'soon'"),
        ({"services": {"s": {"max_replicas": 0}}}, "services.s.max_replicas: Input should be greater than or equal to 1"),
        # 0 would never serve the copy and re-list tasks without pause on the event loop
        ({"services": {"s": {"max_replicas": 4}}, "docker": {"watch_tasks_interval": 0}},
         "docker.watch_tasks_interval: Input should be greater than 0"),
        ({"services": {"s": {}}}, "services.s.max_replicas: Field required"),
        ({"docker": {"timeout": "-1s"}}, "docker.timeout: invalid duration"),
        ({"listen": "8080"}, "listen must be HOST:PORT"),
        ({"unknown": 1}, "unknown: Extra inputs are not permitted"),
    ],
)
def test_each_problem_is_named_by_its_yaml_path(data, problem):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert any(p.startswith(problem) or problem in p for p in info.value.problems), info.value.problems


def test_every_problem_is_listed_not_only_the_first():
    with pytest.raises(ConfigError) as info:
        parse_config({"services": {"a": {"max_replicas": 0}, "b": {"max_replicas": 2, "typo": 1}}})
    assert len(info.value.problems) == 2


def test_an_empty_token_file_is_an_error(tmp_path):
    token = tmp_path / "token"
    token.write_text("\n")
    config = parse_config({"auth": {"bearer_token_file": str(token)}})
    with pytest.raises(ConfigError, match="empty"):
        read_token(config)
    token.write_text("s3cret\n")
    assert read_token(config) == "s3cret"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "receiver", *args], capture_output=True, text=True, timeout=60)


def test_check_config_exits_0_on_a_valid_file(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text(GOOD)
    result = run_cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "valid (1 services: ollama_ollama" in result.stdout


def test_check_config_exits_1_listing_every_problem(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("services:\n  a:\n    max_replicas: -1\n  b:\n    max_replicas: 2\n    cooldown: 5m\n")
    result = run_cli("check-config", str(path))
    assert result.returncode == 1
    assert "services.a.max_replicas" in result.stderr
    assert "services.b.cooldown" in result.stderr


def test_check_config_reports_broken_yaml(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("services: [\n")
    result = run_cli("check-config", str(path))
    assert result.returncode == 1
    assert "invalid YAML" in result.stderr


def test_serve_refuses_to_start_on_an_invalid_file(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("services:\n  a: {}\n")
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 1
    assert "services.a.max_replicas: Field required" in result.stderr


def test_the_shipped_example_and_the_readme_reference_are_valid():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parent.parent
    assert load_config(root / "examples" / "config.yml").services["ollama_ollama"].max_replicas == 4
    readme = (root / "README.md").read_text()
    block = readme.split("## Configuration reference", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    data = yaml.safe_load(block)
    data["auth"] = {}  # the reference names a secret path that exists only in the stack
    assert parse_config(data).services["ollama_ollama"].convergence_wait == 300


def test_check_config_reports_an_empty_token_file(tmp_path):
    token = tmp_path / "token"
    token.write_text("")
    path = tmp_path / "c.yml"
    path.write_text(f"auth:\n  bearer_token_file: {token}\n")
    result = run_cli("check-config", str(path))
    assert result.returncode == 1
    assert "auth.bearer_token_file: the file is empty" in result.stderr


def test_backtest_without_alertmanager_config_exits_2_with_argparses_message():
    result = run_cli("backtest", "--prometheus", "http://127.0.0.1:9", "--rules", "r.yml", "--config", "c.yml",
                     "--from", "0", "--to", "1")
    assert result.returncode == 2
    assert "the following arguments are required: --alertmanager-config" in result.stderr


def test_the_default_scaling_alerts_are_the_shipped_rules_alerts_with_a_scale_label():
    """Freezes are judged against these names: a rule renamed or added must be named here too."""
    from pathlib import Path

    import yaml

    from receiver.config import ScalingAlerts

    shipped: dict[str, set[str]] = {"up": set(), "down": set()}
    for path in (Path(__file__).parents[1] / "rules").glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule and "scale" in rule.get("labels", {}):
                    shipped[rule["labels"]["scale"]].add(rule["alert"])
    defaults = ScalingAlerts()
    assert (set(defaults.up), set(defaults.down)) == (shipped["up"], shipped["down"])


def test_wake_needs_a_listener_an_http_upstream_and_a_port_of_its_own():
    service = {"min_replicas": 0, "max_replicas": 2, "wake": {"upstream": "http://ollama:11434"}}
    with pytest.raises(ConfigError, match=r"wake.listen: needed by services.s.wake"):
        parse_config({"services": {"s": service}})
    with pytest.raises(ConfigError, match=r"wake.listen: the port of listen"):
        parse_config({"listen": "0.0.0.0:8080", "wake": {"listen": "0.0.0.0:8080"}, "services": {"s": service}})
    with pytest.raises(ConfigError, match=r"services.s.wake: upstream must be http"):
        parse_config({"wake": {"listen": ":8081"}, "services": {"s": {**service, "wake": {"upstream": "ollama:11434"}}}})
    config = parse_config({"wake": {"listen": "0.0.0.0:8081"}, "services": {"s": service}})
    wake = config.services["s"].wake
    assert wake is not None and (wake.max_pending, wake.wake_timeout, wake.health_path) == (10, 300.0, "/api/version")


def test_an_empty_health_checker_entry_is_refused_it_would_match_every_request():
    with pytest.raises(ConfigError, match=r"wake: health_checkers: an empty entry"):
        parse_config({"wake": {"listen": ":8081", "health_checkers": ["kube-probe", " "]}})
