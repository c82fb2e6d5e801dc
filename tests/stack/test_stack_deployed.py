"""The whole stack deployed on the local swarm: every service runs and is healthy, configs and
secrets are where the programs read them, Ollama runs only on the labelled node, an alert posted
to the stack's Alertmanager scales the Ollama stand-in, and a redeploy is undone by the receiver.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.payloads import payload
from receiver.state import STATE_LABELS

from .deployment import (
    ALERTMANAGER_CONFIG,
    NODE_LABEL,
    PROMETHEUS_CONFIG,
    ROOT,
    RULES,
    SERVICES,
    Stack,
    wait_for,
)

# Prometheus gets rules/ renamed for this stack's Ollama service (RULES_DIR), as an operator
# deploying under another stack name does: the alerts fire for it, the doctor follows them.
LIVE_RULES = True


@pytest.mark.swarm
def test_every_service_reaches_its_desired_task_count(stack: Stack):
    status = stack.wait_converged(60)
    assert set(status) == {stack.service_name(s) for s in SERVICES}
    assert all(running == desired >= 1 for running, desired in status.values()), status


@pytest.mark.swarm
def test_receiver_container_health_check_reports_healthy(stack: Stack):
    assert stack.health("autoscaler") == "healthy"
    health = stack.client.api.inspect_container(stack.container("autoscaler").id)["State"]["Health"]
    assert health["Log"] and health["Log"][-1]["ExitCode"] == 0


@pytest.mark.swarm
def test_every_container_health_check_passes(stack: Stack):
    for short in SERVICES:
        wait_for(lambda s=short: stack.health(s) == "healthy", 60, f"{short} to be healthy", 1)


@pytest.mark.swarm
def test_ollama_waits_for_a_labelled_node_and_runs_only_there(stack: Stack):
    unplaced = stack.observed["unplaced_ollama_task"]
    assert unplaced["State"] == "pending" and "no suitable node" in unplaced["Err"], unplaced
    assert stack.observed["ollama_running_before_label"] == 0
    tasks = stack.client.api.tasks(filters={"service": stack.ollama, "desired-state": "running"})
    assert tasks and {t["NodeID"] for t in tasks} == {stack.node_id}
    node = stack.client.nodes.get(stack.node_id)
    assert node.attrs["Spec"]["Labels"][NODE_LABEL] == "true"


@pytest.mark.swarm
def test_configs_and_secrets_are_where_the_programs_read_them(stack: Stack):
    expected = {
        ("autoscaler", "/etc/autoscaler/config.yml"): Path(stack.env["AUTOSCALER_CONFIG"]).read_text(),
        ("autoscaler", "/run/secrets/autoscaler_token"): stack.token,
        ("alertmanager", "/etc/alertmanager/alertmanager.yml"): ALERTMANAGER_CONFIG.read_text(),
        ("alertmanager", "/run/secrets/autoscaler_token"): stack.token,
        ("prometheus", "/etc/prometheus/prometheus.yml"): PROMETHEUS_CONFIG.read_text(),
        ("docker-gate", "/etc/autoscaler/config.yml"): Path(stack.env["AUTOSCALER_CONFIG"]).read_text(),
        ("socket-proxy-traefik", "/usr/local/etc/haproxy/haproxy.cfg"):
            (ROOT / "deploy" / "haproxy-traefik.cfg").read_text(),
        **{("prometheus", f"/etc/prometheus/rules/{r.name}"): (Path(stack.env["RULES_DIR"]) / r.name).read_text()
           for r in RULES},
        **{("grafana", target): (ROOT / "deploy" / "grafana" / source).read_text() for source, target in (
            ("datasource.yml", "/etc/grafana/provisioning/datasources/prometheus.yml"),
            ("dashboards.yml", "/etc/grafana/provisioning/dashboards/autoscaler.yml"),
            ("autoscaler-dashboard.json", "/var/lib/grafana/dashboards/autoscaler.json"),
        )},
    }
    for (short, path), content in expected.items():
        # As the program's own user: the token is readable by its reader only (mode 0400).
        code, out = stack.exec(short, ["cat", path])
        assert code == 0 and out == content, f"{short}:{path}"


@pytest.mark.swarm
def test_the_token_secret_is_readable_only_by_the_program_that_uses_it(stack: Stack):
    for short, uid in (("autoscaler", "10001"), ("alertmanager", "65534")):
        code, out = stack.exec(short, ["stat", "-L", "-c", "%u %a", "/run/secrets/autoscaler_token"])
        assert (code, out.split()) == (0, [uid, "400"]), f"{short}: {out}"


@pytest.mark.swarm
def test_prometheus_loads_the_rules_and_scrapes_every_target(stack: Stack):
    code, out = stack.exec("prometheus", ["promtool", "check", "config", "/etc/prometheus/prometheus.yml"])
    assert code == 0, out
    groups = {g["name"] for r in RULES for g in yaml.safe_load(r.read_text())["groups"]}

    def api(path: str) -> Any:
        code, out = stack.exec("prometheus", ["wget", "-q", "-O-", f"http://127.0.0.1:9090/api/v1/{path}"])
        assert code == 0, out
        return json.loads(out)["data"]

    assert {g["name"] for g in api("rules")["groups"]} == groups

    def all_up() -> dict[str, str] | None:
        health = {t["labels"]["job"]: t["health"] for t in api("targets?state=active")["activeTargets"]}
        return health if set(health) >= {"prometheus", "cadvisor", "traefik", "alertmanager", "autoscaler"} \
            and set(health.values()) == {"up"} else None

    wait_for(all_up, 60, "every scrape target to be up", 2)
    assert [a["url"] for a in api("alertmanagers")["activeAlertmanagers"]] == ["http://alertmanager:9093/api/v2/alerts"]
    # One target per receiver task, by its address, not "autoscaler:8080" (one task per DNS answer).
    monitoring = stack.client.networks.get(f"{stack.name}_monitoring").id
    tasks = {f"{address.split('/')[0]}:8080"
             for t in stack.client.api.tasks(filters={"service": stack.service_name("autoscaler"), "desired-state": "running"})
             for attachment in t.get("NetworksAttachments", []) if attachment["Network"]["ID"] == monitoring
             for address in attachment["Addresses"]}
    targets = {t["labels"]["instance"] for t in api("targets?state=active")["activeTargets"]
               if t["labels"]["job"] == "autoscaler"}
    assert targets == tasks and len(tasks) == int(stack.env["AUTOSCALER_REPLICAS"]), (targets, tasks)


@pytest.mark.swarm
def test_receiver_is_ready_through_the_docker_gate(stack: Stack):
    status, body = stack.http("autoscaler", "GET", "http://127.0.0.1:8080/-/ready")
    assert status == 200, body


@pytest.mark.swarm
def test_receiver_reads_the_silences_of_the_stacks_alertmanager(stack: Stack):
    def polled() -> bool:
        status, body = stack.http("autoscaler", "GET", "http://127.0.0.1:8080/metrics")
        return status == 200 and 'autoscaler_alertmanager_polls_total{result="ok"}' in body
    wait_for(polled, 60, "the receiver to read Alertmanager's silences")
    status, body = stack.http("autoscaler", "GET", "http://127.0.0.1:8080/status")
    assert status == 200
    assert all(entry["frozen"] is None for entry in json.loads(body)["services"])


@pytest.mark.swarm
def test_receiver_answers_only_webhooks_that_carry_the_token_secret(stack: Stack):
    body = json.dumps(payload())  # a notification with no alert: authenticated, it changes nothing
    headers = {"Content-Type": "application/json"}
    status, _ = stack.http("autoscaler", "POST", "http://autoscaler:8080/webhook", body, headers)
    assert status == 401
    status, _ = stack.http("autoscaler", "POST", "http://autoscaler:8080/webhook", body,
                           {**headers, "Authorization": "Bearer not-the-token"})
    assert status == 401
    status, text = stack.http("autoscaler", "POST", "http://autoscaler:8080/webhook", body,
                              {**headers, "Authorization": f"Bearer {stack.token}"})
    assert status == 200, text


def scale_ollama_through_alertmanager(stack: Stack) -> int:
    """Posts OllamaHighCPU to the stack's Alertmanager; waits for one more replica; returns the count."""
    before = stack.service("ollama").attrs["Spec"]["Mode"]["Replicated"]["Replicas"]
    code, out = stack.exec("alertmanager", [
        "amtool", "--alertmanager.url=http://127.0.0.1:9093", "alert", "add", "OllamaHighCPU",
        f"service={stack.ollama}", "scale=up", "--annotation=summary=stack test",
    ])
    assert code == 0, out

    def scaled() -> bool:
        svc = stack.service("ollama")
        running = len(stack.client.api.tasks(filters={"service": stack.ollama, "desired-state": "running"}))
        return svc.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == before + 1 and running == before + 1 \
            and len(stack.containers("ollama")) == before + 1

    try:
        wait_for(scaled, 90, f"{stack.ollama} to run {before + 1} replicas", 1)
    except AssertionError as err:  # say why: a task waiting for a node (resources, the label) or failing
        tasks = stack.client.api.tasks(filters={"service": stack.ollama, "desired-state": "running"})
        states = [f"{t['Status']['State']}: {t['Status'].get('Err') or t['Status'].get('Message')}" for t in tasks]
        raise AssertionError(f"{err}; replicas asked: {stack.service('ollama').attrs['Spec']['Mode']}; "
                             f"tasks: {states}") from None
    return before + 1


@pytest.mark.swarm
def test_alert_posted_to_alertmanager_scales_ollama_through_the_docker_gate(stack: Stack):
    scaled = scale_ollama_through_alertmanager(stack)
    # The receiver decided it, with the reason it reports everywhere ...
    status, body = stack.http("autoscaler", "GET", "http://127.0.0.1:8080/status")
    assert status == 200
    entry = next(e for e in json.loads(body)["services"] if e["service"] == stack.ollama)
    decision = entry["last_decision"]
    assert (decision["reason"], decision["to"]) == ("scaled_up", scaled)
    # ... the update went through the docker gate ...
    gate_log = b"".join(stack.service("docker-gate").logs(stdout=True, stderr=True)).decode()
    updates = [json.loads(line[line.index("{"):]) for line in gate_log.splitlines() if '"op": "update service"' in line]
    assert any(u["status"] == 200 and u["service"] == stack.ollama for u in updates), gate_log[-2000:]
    # ... and every replica still runs on the labelled node.
    tasks = stack.client.api.tasks(filters={"service": stack.ollama, "desired-state": "running"})
    assert {t["NodeID"] for t in tasks} == {stack.node_id}


@pytest.mark.swarm
def test_a_stack_redeploy_is_undone_by_the_receiver_restoring_its_last_decision(stack: Stack):
    spec = stack.service("ollama").attrs["Spec"]
    if STATE_LABELS["up"] not in (spec.get("Labels") or {}):
        scale_ollama_through_alertmanager(stack)  # this test's own scale, when none came before
    spec = stack.service("ollama").attrs["Spec"]
    scaled, labels = spec["Mode"]["Replicated"]["Replicas"], spec.get("Labels") or {}
    assert scaled >= 2 and STATE_LABELS["up"] in labels
    stack.deploy()  # the same files again, as an operator's `docker stack deploy` does
    spec = stack.service("ollama").attrs["Spec"]
    assert spec["Mode"]["Replicated"]["Replicas"] == 1  # the file's deploy.replicas
    assert STATE_LABELS["up"] not in (spec.get("Labels") or {})  # our labels dropped (FACTS)

    def restored() -> bool:
        spec = stack.service("ollama").attrs["Spec"]
        return spec["Mode"]["Replicated"]["Replicas"] == scaled and \
            (spec.get("Labels") or {}).get(STATE_LABELS["up"]) == labels[STATE_LABELS["up"]]

    wait_for(restored, 120, "the receiver to restore its last decision (reconcile_interval 30s)", 1)
    status, body = stack.http("autoscaler", "GET", "http://127.0.0.1:8080/status")
    entry = next(e for e in json.loads(body)["services"] if e["service"] == stack.ollama)
    assert (entry["last_decision"]["reason"], entry["last_decision"]["to"]) == ("restored", scaled)


@pytest.mark.swarm
def test_traefik_sees_the_swarm_read_only_and_cannot_reach_the_receivers_proxy(stack: Stack):
    def wget(url: str, post: str | None = None) -> tuple[int, str]:
        cmd = ["wget", "-q", "-O-", url] if post is None else ["wget", "-q", "-O-", "--post-data", post, url]
        return stack.exec("traefik", cmd)

    for path in ("/version", "/v1.41/services", "/v1.41/networks", "/v1.41/tasks"):
        code, out = wget(f"http://socket-proxy-traefik:2375{path}")
        assert code == 0, (path, out)
    code, out = wget(f"http://socket-proxy-traefik:2375/v1.41/services/{stack.ollama}/update?version=1", "{}")
    assert code != 0 and "403" in out, out
    code, out = wget("http://socket-proxy-traefik:2375/v1.41/containers/json")
    assert code != 0 and "403" in out, out
    code, out = wget("http://docker-gate:2375/_ping")
    assert code != 0, out  # another network: the name does not even resolve


@pytest.mark.swarm
def test_doctor_exits_0_in_the_receivers_container_with_the_stacks_own_configuration(stack: Stack):
    doctor = ["autoscaler", "doctor", "--config", "/etc/autoscaler/config.yml", "--json"]
    runs: list[tuple[int, dict[str, Any]]] = []

    def healthy() -> bool:
        code, out = stack.exec("autoscaler", doctor, stderr=False)
        if code == 2:  # cannot run (yet): its one line went to stderr
            return False
        runs.append((code, {link["link"]: link for link in json.loads(out)["links"]}))
        # Every signal the shipped switch enables must be fed, not skipped (the doctor skips an
        # alert whose inputs have no series at all: a cAdvisor not scraped yet would pass).
        skipped = runs[-1][1]["alert_rules"]["checked"].partition("not fed, skipped: ")[2].split(", ")
        return code == 0 and not {"OllamaHighCPU", "OllamaHighInFlight"} & set(skipped)

    # Once the loop has run a few evaluation cycles (scrape 15s, rules every 30s): every link holds.
    try:
        wait_for(healthy, 240, "every link of the chain to hold", 15)
    except AssertionError:
        code, links = runs[-1] if runs else (2, {})
        raise AssertionError({n: (link["state"], link.get("checked"), link.get("todo"))
                              for n, link in links.items() if link["state"] != "ok"}) from None
    code, links = runs[-1]
    print(f"\ndoctor: exit 0 after {len(runs)} run(s); links: {', '.join(links)}")
    assert all(link["service"] == stack.ollama for link in links.values())
    for name in ("service", "docker_access", "input_series", "recording_rules", "alert_rules", "route",
                 "silences", "webhook"):
        assert links[name]["state"] == "ok", links[name]
    version = stack.service("ollama").attrs["Version"]["Index"]
    code, text = stack.exec("autoscaler", doctor[:-1])
    assert stack.service("ollama").attrs["Version"]["Index"] == version  # its probes changed nothing
    print(f"$ {' '.join(doctor[:-1])}\n{text}")
    assert code == 0 and f"doctor: every link holds for {stack.ollama}" in text

    # Broken, as an operator breaks it: a freeze (a silence of its scaling alerts) names that link, only it.
    am = ["--alertmanager", "http://alertmanager:9093"]
    try:
        code, out = stack.exec("autoscaler", ["autoscaler", "freeze", stack.ollama, "--for", "10m",
                                              "--comment", "model migration", *am])
        assert code == 0, out
        code, text = stack.exec("autoscaler", doctor[:-1])
        print(f"$ {' '.join(doctor[:-1])}   # after autoscaler freeze\n{text}")
        assert code == 1 and text.rstrip().endswith(f"doctor: broken: {stack.ollama} silences, mutes"), text
    finally:
        code, out = stack.exec("autoscaler", ["autoscaler", "unfreeze", stack.ollama, *am])
        assert code == 0, out
