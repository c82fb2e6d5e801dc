"""``autoscaler doctor`` on a live chain (real Prometheus, Alertmanager, receiver and swarm):
exit 0 when it holds, and for each link a way to break it that makes the doctor exit 1 naming
that link and that service."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from devkit.loop import SHIPPED_SELECTOR
from devkit.procs import start_alertmanager, start_prometheus
from devkit.render import render_rules
from devkit.waiting import wait_for

from .conftest import Chain
from .gate import REFUSAL, RefusingGate

pytestmark = [pytest.mark.swarm, pytest.mark.loop]
ROOT = Path(__file__).resolve().parents[2]


def query(prometheus: str, promql: str) -> list[dict[str, object]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as r:
        return list(json.loads(r.read())["data"]["result"])


def version_of(chain: Chain) -> int:
    return int(chain.loop.api.inspect_service(chain.service)["Version"]["Index"])


def test_a_healthy_chain_passes_every_link_and_changes_nothing(chain: Chain):
    before = chain.loop.api.inspect_service(chain.service)
    result = chain.doctor()
    assert result.code == 0, result.out + result.err
    assert [(link["link"], link["state"]) for link in result.links()] == [
        ("service", "ok"), ("input_series", "ok"), ("recording_rules", "ok"), ("alert_rules", "ok"),
        ("route", "ok"), ("silences", "ok"), ("webhook", "ok"), ("docker_access", "ok")]
    after = chain.loop.api.inspect_service(chain.service)
    assert after["Version"]["Index"] == before["Version"]["Index"]
    assert after["Spec"] == before["Spec"]
    text = chain.doctor(as_json=False)
    assert text.code == 0 and text.out.splitlines()[-1] == f"doctor: every link holds for {chain.service}"
    print(f"\n--- healthy run ---\n{text.out}")


def test_a_service_name_with_a_typo_breaks_the_service_link(chain: Chain):
    policy = yaml.safe_load(chain.config().read_text())["services"][chain.service]
    typo = chain.service[:-1]
    config = chain.config("typo", services={typo: policy})
    result = chain.doctor(config=config)
    assert result.code == 1
    assert ("service", typo) in result.broken()
    print(f"\n--- typo run ---\n{chain.doctor(config=config, as_json=False).out}")


def test_a_rule_file_left_out_breaks_the_alert_rules_link(chain: Chain, tmp_path):
    assert chain.loop.prometheus is not None
    config = (chain.loop.prometheus.workdir / "prometheus.yml").read_text()
    with start_prometheus(config, [], tmp_path) as bare:  # the same scrape, no rule file
        result = chain.doctor(prometheus=bare.url)
    assert result.code == 1
    assert ("alert_rules", chain.service) in result.broken()


def test_a_route_that_sends_scaling_alerts_elsewhere_breaks_the_route_link(chain: Chain, tmp_path):
    assert chain.loop.alertmanager is not None
    config = yaml.safe_load((chain.loop.alertmanager.workdir / "alertmanager.yml").read_text())
    config["route"]["routes"][0]["receiver"] = "default"
    with start_alertmanager(yaml.safe_dump(config), tmp_path) as elsewhere:
        result = chain.doctor(alertmanager=elsewhere.url)
    assert result.code == 1
    assert ("route", chain.service) in result.broken()
    [route] = [link for link in result.links() if link["link"] == "route"]
    assert "-> default" in route["checked"]


def test_a_wrong_token_breaks_the_webhook_link(chain: Chain):
    wrong = chain.workdir / "wrong-token"
    wrong.write_text("not-the-token\n")
    result = chain.doctor(config=chain.config("wrong-token", auth={"bearer_token_file": str(wrong)}))
    assert result.code == 1
    assert result.broken() == [("webhook", chain.service)]


def operator(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "receiver", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_an_active_silence_breaks_the_silences_link_until_it_is_lifted(chain: Chain):
    assert chain.loop.alertmanager is not None
    am = chain.loop.alertmanager.url
    operator("freeze", chain.service, "--for", "10m", "--comment", "doctor test", "--alertmanager", am)
    try:
        result = chain.doctor()
        assert result.code == 1
        assert result.broken() == [("silences", chain.service)]
        [line] = [link for link in result.links() if link["link"] == "silences"]
        assert "doctor test" in line["checked"] and "unfreeze" in line["todo"]
    finally:
        operator("unfreeze", chain.service, "--alertmanager", am)
    assert chain.doctor().code == 0


def test_an_access_layer_that_refuses_updates_breaks_the_docker_access_link(chain: Chain):
    before = version_of(chain)
    gate = RefusingGate()
    try:
        result = chain.doctor(config=chain.config("gate", docker={"host": gate.url, "timeout": "20s"}))
    finally:
        gate.close()
    assert result.code == 1
    assert result.broken() == [("docker_access", chain.service)]
    [line] = [link for link in result.links() if link["link"] == "docker_access"]
    assert "403" in line["checked"] and REFUSAL in line["checked"]
    assert gate.refused == 1
    assert version_of(chain) == before


def test_an_unreachable_alertmanager_cannot_run(chain: Chain):
    result = chain.doctor(alertmanager="http://127.0.0.1:9")
    assert result.code == 2 and result.out == ""
    assert result.err.startswith("autoscaler doctor: cannot run: Alertmanager GET http://127.0.0.1:9/api/v2/status")


def test_rules_loaded_for_exporters_the_deployment_lacks_are_skipped_not_failed(chain: Chain, tmp_path):
    assert chain.loop.prometheus is not None
    config = (chain.loop.prometheus.workdir / "prometheus.yml").read_text()
    rules = [chain.loop.rules_text(), *(render_rules(ROOT / "rules" / f"ollama-{kind}.rules.yml", interval="1s",
                                                     selectors={SHIPPED_SELECTOR: chain.service})
                                        for kind in ("gpu", "traefik"))]
    with start_prometheus(config, rules, tmp_path) as every:
        wait_for(lambda: query(every.url, f'swarm_service:cpu_signal:complete{{service="{chain.service}"}}'), 60,
                 "the CPU signal on the second Prometheus", 0.5)
        result = chain.doctor(prometheus=every.url)
    assert result.code == 0, result.out
    [line] = [link for link in result.links() if link["link"] == "alert_rules"]
    assert line["checked"].endswith(
        "not fed, skipped: OllamaHighGPU, OllamaHighInFlight, OllamaUnused"), line
