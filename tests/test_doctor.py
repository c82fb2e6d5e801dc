"""``autoscaler doctor`` without a live chain: the links' pure checks, and the cases where it
cannot run (exit 2, one clear line, no traceback). The live chain: tests/doctor/."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from receiver.cli import main
from receiver.config import ScalingAlerts
from receiver.doctor.amlinks import AlertShape, route_link, silences_link
from receiver.doctor.links import State
from receiver.domain import Direction

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
SHAPES = [AlertShape("OllamaHighCPU", Direction.UP, {"scale": "up"}),
          AlertShape("OllamaLowCPU", Direction.DOWN, {"scale": "down"})]
TUESDAY_NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
SATURDAY_NOON = datetime(2026, 12, 5, 12, 0, tzinfo=UTC).timestamp()


def doctor(tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, *args: str) -> tuple[int, str]:
    path = tmp_path / "config.yml"
    path.write_text(config)
    code = main(["doctor", "--config", str(path), *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


def test_a_configuration_that_does_not_load_cannot_run(tmp_path, capsys):
    code, err = doctor(tmp_path, capsys, "services: {x: {max_replicas: zero}}\n")
    assert code == 2
    assert err.startswith("autoscaler doctor: cannot run: ") and "services.x.max_replicas" in err
    assert len(err.splitlines()) == 1


def test_a_configuration_that_is_not_yaml_cannot_run_and_says_so_on_one_line(tmp_path, capsys):
    code, err = doctor(tmp_path, capsys, "listen: [\n")
    assert code == 2 and "invalid YAML" in err and len(err.splitlines()) == 1


def test_no_prometheus_url_cannot_run(tmp_path, capsys):
    code, err = doctor(tmp_path, capsys, "services: {x: {max_replicas: 2}}\n")
    assert code == 2 and "set prometheus.url in the configuration or pass --prometheus URL" in err


def test_an_unreachable_prometheus_cannot_run(tmp_path, capsys):
    code, err = doctor(tmp_path, capsys, "services: {x: {max_replicas: 2}}\n",
                       "--prometheus", "http://127.0.0.1:9", "--alertmanager", "http://127.0.0.1:9")
    assert code == 2 and "cannot run: Prometheus GET http://127.0.0.1:9/api/v1/rules" in err


def test_a_service_that_is_not_configured_cannot_run(tmp_path, capsys):
    code, err = doctor(tmp_path, capsys, "services: {x: {max_replicas: 2}}\nprometheus: {url: 'http://p:9090'}\n",
                       "--alertmanager", "http://a:9093", "--service", "y")
    assert code == 2 and "y is not under services:" in err


def test_the_shipped_routes_send_both_directions_to_the_autoscaler_with_their_timings():
    link = route_link("ollama_ollama", SHAPES, SHIPPED, "/webhook", "amtool ...")
    assert link.state is State.OK
    assert "OllamaHighCPU (scale=up) -> autoscaler (group_wait 10s, group_interval 30s, repeat_interval 2m15s)" in link.checked
    assert "repeat_interval 5m15s" in link.checked


def test_a_route_to_a_receiver_without_the_webhook_is_broken():
    config = yaml.safe_load(yaml.safe_dump(SHIPPED))
    config["route"]["routes"][0]["receiver"] = "default"
    link = route_link("ollama_ollama", SHAPES, config, "/webhook", "amtool config routes test ...")
    assert link.state is State.BROKEN and "-> default" in link.checked and "amtool config routes test" in link.todo


def test_business_hours_mute_scale_down_shows_until_when_and_is_not_a_fault():
    link = silences_link("ollama_ollama", SHAPES, SHIPPED, [], TUESDAY_NOON, "http://am:9093", ScalingAlerts())
    assert link.state is State.OK
    assert "scale=down muted now by business-hours until about 2026-12-01T18:00:00Z (a schedule)" in link.checked
    assert "muted" not in silences_link("ollama_ollama", SHAPES, SHIPPED, [], SATURDAY_NOON, "http://am:9093", ScalingAlerts()).checked


def test_an_active_silence_of_the_service_is_broken_with_how_to_lift_it():
    silence = {"id": "s1", "status": {"state": "active"}, "endsAt": "2026-12-01T14:00:00Z", "createdBy": "ops",
               "comment": "migration", "matchers": [{"name": "service", "value": "ollama_ollama", "isRegex": False}]}
    link = silences_link("ollama_ollama", SHAPES, SHIPPED, [silence], SATURDAY_NOON, "http://am:9093", ScalingAlerts())
    assert link.state is State.BROKEN and "until 2026-12-01T14:00:00Z by ops" in link.checked
    assert link.todo == "when the freeze is over: autoscaler unfreeze ollama_ollama --alertmanager http://am:9093"


def rules_api(*rules: dict[str, object]) -> dict[str, object]:
    return {"groups": [{"name": "g", "file": "/etc/prometheus/rules/g.rules.yml", "rules": list(rules)}]}


LEAF = {"type": "recording", "name": "task:cpu", "query": 'rate(cpu{name=~"svc"}[1m])'}
RATIO = {"type": "recording", "name": "svc:ratio", "query": "avg by (service) (task:cpu)"}
COMPLETE = {"type": "recording", "name": "svc:complete", "query": "count by (service) (task:cpu) == on (service) count by (service) (task:cpu)"}
LOW = {"type": "alerting", "name": "Low", "query": "svc:ratio < 0.2 and on (service) svc:complete", "labels": {"scale": "down"},
       "health": "ok", "duration": 600}


def test_a_record_absent_by_its_own_condition_holds_its_alert_back_without_breaking_the_link():
    from receiver.doctor.promlinks import recording_rules_link
    from receiver.doctor.signals import record_query, rules_of

    rules = rules_of(rules_api(LEAF, RATIO, COMPLETE, LOW))
    values = {rules.records["task:cpu"][0].query(): {"s": 1.0}, record_query("svc:ratio"): {"s": 0.1}}
    link = recording_rules_link("s", rules, values)
    assert link.state is State.OK
    assert "svc:complete absent for s now, held back by its `==`: Low cannot fire" in link.checked
    del values[record_query("svc:ratio")]  # no filter in its expression: it should be there
    link = recording_rules_link("s", rules, values)
    assert link.state is State.BROKEN and "Low reads svc:ratio" in link.checked
