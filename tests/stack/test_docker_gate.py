"""The docker gate as deployed by stack.yml, tried from inside the receiver's container with the
receiver's own Docker access (its configured ``docker.host``), as an intruder would."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from receiver.config import load_config

from ..conftest import report
from .attacks import RUNNER, Attack, Attacker, as_json, escalations, other_requests
from .deployment import RECEIVER_PYTHON, Stack, wait_for

pytestmark = pytest.mark.swarm

TARGETS = ("ollama", "prometheus", "traefik", "cadvisor", "docker-gate", "autoscaler", "alertmanager")


def from_the_receiver(stack: Stack, attacks: list[Attack]) -> list[tuple[int, str]]:
    """Sends the requests from inside the receiver's container to its own docker.host."""
    data = as_json(attacks).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("attacks.json")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    assert stack.container("autoscaler").put_archive("/tmp", archive.getvalue())
    docker_host = load_config(Path(stack.env["AUTOSCALER_CONFIG"])).docker.host
    code, out = stack.exec("autoscaler", [RECEIVER_PYTHON, "-c", RUNNER, "/tmp/attacks.json", docker_host])
    assert code == 0, out[-2000:]
    return [tuple(r) for r in json.loads(out.strip().splitlines()[-1])]


def without_labels(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "Labels"}


def is_refused(attack: Attack, status: int, text: str) -> bool:
    if 400 <= status < 500:
        return True
    return bool(attack.must_not_show) and status == 200 and not any(s in text for s in attack.must_not_show)


def test_the_receivers_own_calls_pass(stack: Stack):
    ollama = stack.client.api.inspect_service(stack.ollama)
    calls = [
        Attack("ping", "GET", "/_ping"), Attack("ping", "HEAD", "/v1.41/_ping"), Attack("version", "GET", "/version"),
        Attack("info", "GET", "/v1.41/info"),
        Attack("services", "GET", f'/v1.41/services?filters={{"name":["{stack.ollama}"]}}'),
        Attack("inspect", "GET", f"/v1.41/services/{stack.ollama}"),
        Attack("tasks", "GET", f'/v1.41/tasks?filters={{"service":["{ollama["ID"]}"],"desired-state":["running"]}}'),
        Attack("records", "GET", f'/v1.41/configs?filters={{"label":["swarm-autoscaler.record-of={stack.ollama}"]}}'),
    ]
    results = from_the_receiver(stack, calls)
    assert [status for status, _ in results] == [200] * len(calls), results
    assert json.loads(results[4][1])[0]["ID"] == ollama["ID"]


def test_every_escalation_from_inside_the_receiver_is_refused_and_changes_nothing(stack: Stack):
    client = stack.client
    services = {s: client.api.inspect_service(stack.service_name(s)) for s in TARGETS}
    am_config = client.configs.get(f"{stack.name}_alertmanager_config")
    ids = {
        "secret": client.secrets.get(stack.secret_name).id, "secret_name": stack.secret_name,
        "alertmanager_config": am_config.id, "alertmanager_config_name": am_config.name,
        "gate_network": client.networks.get(f"{stack.name}_docker-api").id, "node": stack.node_id,
    }
    attacker = Attacker(services, ids)
    updates, others = escalations(attacker, stack.name), other_requests(attacker, stack.name)
    swarm_before = client.api.inspect_swarm()
    # Other stack tests on this engine toggle the node's `ollama` label: compare the rest of its spec.
    node_before = without_labels(client.api.inspect_node(stack.node_id)["Spec"])
    configs_before = {c.id for c in client.configs.list()}
    secrets_before = {s.id for s in client.secrets.list()}

    results = from_the_receiver(stack, updates + others)

    outcomes = list(zip(updates + others, results, strict=True))
    let_through = [(a.name, status, text[:300]) for a, (status, text) in outcomes if not is_refused(a, status, text)]
    statuses = Counter(status for _, (status, _) in outcomes)
    refused = len(outcomes) - len(let_through)
    assert let_through == [], let_through
    for attack, (status, text) in outcomes[:len(updates)]:
        if status == 403:
            assert json.loads(text)["message"].startswith("refused by the docker gate: "), (attack.name, text)
    for short, service in services.items():
        assert client.api.inspect_service(service["ID"])["Version"] == service["Version"], short
    swarm_after = client.api.inspect_swarm()
    assert (swarm_after["Version"], swarm_after["JoinTokens"]) == (swarm_before["Version"], swarm_before["JoinTokens"])
    assert without_labels(client.api.inspect_node(stack.node_id)["Spec"]) == node_before
    assert {c.id for c in client.configs.list()} == configs_before
    assert {s.id for s in client.secrets.list()} == secrets_before
    assert client.api.services(filters={"name": "astest-intruder"}) == []
    assert [v for v in client.api.volumes()["Volumes"] or [] if v["Name"].startswith("astest-intruder")] == []
    report(f"docker gate, from inside the deployed receiver with its own access: {refused}/{len(outcomes)} "
           f"escalations refused ({len(updates)} service updates, {len(others)} other requests; answers "
           f"{dict(sorted(statuses.items()))}), every targeted service's version unchanged")


def test_an_update_that_only_scales_a_configured_service_within_its_bounds_passes(stack: Stack):
    ollama = stack.client.api.inspect_service(stack.ollama)
    attacker = Attacker({"ollama": ollama}, {})
    scale = attacker.update("scale to 2", "ollama", lambda spec: spec["Mode"]["Replicated"].__setitem__("Replicas", 2))
    [(status, text)] = from_the_receiver(stack, [scale])
    assert status == 200, text
    assert stack.client.api.inspect_service(stack.ollama)["Spec"]["Mode"]["Replicated"]["Replicas"] == 2
    scale_back = Attacker({"ollama": stack.client.api.inspect_service(stack.ollama)}, {}).update(
        "scale to 1", "ollama", lambda spec: spec["Mode"]["Replicated"].__setitem__("Replicas", 1))
    assert from_the_receiver(stack, [scale_back])[0][0] == 200


def test_the_gate_runs_unprivileged_on_a_read_only_root(stack: Stack):
    code, out = stack.exec("docker-gate", ["sh", "-c", "id -u; grep CapEff /proc/1/status; touch /x 2>&1 || echo read-only"])
    lines = out.split("\n")
    assert code == 0 and lines[0] == "10001", out
    assert lines[1].split() == ["CapEff:", "0000000000000000"], out
    assert "read-only" in out, out


def test_after_the_gate_restarts_the_receiver_is_ready_again(stack: Stack):
    stack.container("docker-gate").kill()

    def ready() -> bool:
        status, _ = stack.http("autoscaler", "GET", "http://127.0.0.1:8080/-/ready")
        return status == 200 and stack.health("docker-gate") == "healthy"

    wait_for(ready, 90, "a new gate task and the receiver ready through it", 1)
