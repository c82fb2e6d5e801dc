"""The whole stack (stack.yml) deployed on the local swarm, and taken away again.

``deployed_stack(client)`` builds nothing (conftest's ``local_images`` fixture runs
scripts/local-images first); it deploys ``stack.yml`` plus the test-only ``override.yml`` (a
tmpfs instead of the NFS export) under a unique stack name, waits until every service runs and
the receiver's container is healthy, and on the way out removes everything it made: the stack,
its volumes, the receiver's state configs, the token secret and the node label. Images stay.

Under a unique stack name the Ollama service is ``<stack>_ollama``, so the receiver gets a
copy of deploy/autoscaler.yml with that service name (AUTOSCALER_CONFIG), and Traefik's
labels follow STACK_NAME; everything else is stack.yml as shipped.
"""


from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml

from devkit.waiting import free_port, wait_for
from receiver.record_store import RECORD_LABEL

ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = ROOT / "stack.yml"
OVERRIDE_FILE = Path(__file__).with_name("override.yml")
LOCAL_IMAGES = ROOT / "scripts" / "local-images"
RECEIVER_CONFIG = ROOT / "deploy" / "autoscaler.yml"
NODE_LABEL = "ollama"  # stack.yml: node.labels.ollama == true
SHIPPED_SERVICE = "ollama_ollama"  # the service deploy/autoscaler.yml names
STACK_PREFIX = "astest-stack-"
RECEIVER_PYTHON = "/opt/venv/bin/python"
DOCKER_SOCKET = "/var/run/docker.sock"
RULES = sorted((ROOT / "rules").glob("*.rules.yml"))
ALERTMANAGER_CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus.yml"
SERVICES = {
    "ollama", "traefik", "cadvisor", "prometheus", "alertmanager",
    "docker-gate", "socket-proxy-traefik", "autoscaler", "grafana",
}


def mounted(service: dict[str, Any], kind: str, source: str) -> dict[str, Any]:
    """The config or secret ``source`` as ``service`` mounts it."""
    entry = next((e for e in service.get(kind, []) if e["source"] == source), None)
    assert entry is not None, f"{source} is not among the {kind}"
    return entry


def run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Runs a command; fails the test with its output when it fails."""
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def resolved_stack(*files: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``docker stack config`` of the files, parsed: the stack exactly as Docker will deploy it."""
    args: list[str | Path] = ["docker", "stack", "config"]
    for f in files:
        args += ["-c", f]
    return yaml.safe_load(run(*args, env=env))


@dataclass
class Stack:
    """A deployed stack.yml: names, settings, and helpers to look inside it."""

    name: str
    client: docker.DockerClient
    token: str
    env: dict[str, str]
    workdir: Path
    node_id: str
    # What the fixture saw on its way up, for the tests to assert on.
    observed: dict[str, Any] = field(default_factory=dict)

    @property
    def ollama(self) -> str:
        return self.service_name("ollama")

    @property
    def secret_name(self) -> str:
        return self.env["AUTOSCALER_TOKEN_SECRET"]

    def service_name(self, short: str) -> str:
        return f"{self.name}_{short}"

    def service(self, short: str):
        return self.client.services.get(self.service_name(short))

    def services(self) -> list[Any]:
        return self.client.services.list(filters={"label": f"com.docker.stack.namespace={self.name}"})

    def deploy(self) -> None:
        """``docker stack deploy`` of stack.yml and the override, as the fixture first did."""
        extra: list[str | Path] = []
        if (self.workdir / "edits.yml").exists():
            extra = ["-c", self.workdir / "edits.yml"]
        run("docker", "stack", "deploy", "--resolve-image", "never", "-c", STACK_FILE, "-c", OVERRIDE_FILE, *extra,
            self.name, env={**os.environ, **self.env})

    def service_status(self) -> dict[str, tuple[int, int]]:
        """Service name -> (running tasks, desired tasks), as the engine counts them."""
        return {
            s["Spec"]["Name"]: (s["ServiceStatus"]["RunningTasks"], s["ServiceStatus"]["DesiredTasks"])
            for s in self.client.api.services(filters={"label": f"com.docker.stack.namespace={self.name}"}, status=True)
        }

    def wait_converged(self, timeout: float = 120) -> dict[str, tuple[int, int]]:
        def converged() -> dict[str, tuple[int, int]] | None:
            status = self.service_status()
            done = status and all(desired > 0 and running == desired for running, desired in status.values())
            return status if done else None

        return wait_for(converged, timeout, f"every service of {self.name} to run its desired tasks", 1)

    def containers(self, short: str) -> list[Any]:
        return self.client.containers.list(
            sparse=True,
            filters={"label": f"com.docker.swarm.service.name={self.service_name(short)}", "status": "running"},
        )

    def container(self, short: str):
        found = self.containers(short)
        assert found, f"no running container of {self.service_name(short)}"
        return found[0]

    def health(self, short: str) -> str | None:
        """The Docker health status of a running container of the service (inspected now)."""
        containers = self.containers(short)
        if not containers:
            return None
        state = self.client.api.inspect_container(containers[0].id)["State"]
        return (state.get("Health") or {}).get("Status")

    def exec(self, short: str, cmd: list[str], **kw: Any) -> tuple[int, str]:
        """Runs ``cmd`` in a running container of the service; returns (exit code, output)."""
        code, out = self.container(short).exec_run(cmd, **kw)
        return code, out.decode(errors="replace")

    def http(self, short: str, method: str, url: str, body: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, str]:
        """An HTTP request made with Python inside the receiver's container (on its networks)."""
        assert short == "autoscaler", "only the receiver's image has Python"
        script = (
            "import json, sys, urllib.request, urllib.error\n"
            "method, url, body, headers = json.loads(sys.argv[1])\n"
            "req = urllib.request.Request(url, data=body.encode() if body is not None else None,"
            " method=method, headers=headers)\n"
            "try:\n"
            "    r = urllib.request.urlopen(req, timeout=10)\n"
            "except urllib.error.HTTPError as e:\n"
            "    r = e\n"
            "print(r.status)\n"
            "print(r.read().decode())\n"
        )
        code, out = self.exec(short, [RECEIVER_PYTHON, "-c", script, json.dumps([method, url, body, headers or {}])])
        assert code == 0, out
        status, _, text = out.partition("\n")
        return int(status), text

    def remove(self) -> None:
        """Takes the stack and everything it made away; idempotent. Images stay."""
        remove_stack(self.client, self.name, self.secret_name)


def remove_stack(client: docker.DockerClient, name: str, secret_name: str) -> None:
    """Removes the stack, its volumes, the receiver's state configs and the token secret.

    Every step runs even when an earlier one fails; the first failure is raised at the end.
    """
    namespace = {"label": f"com.docker.stack.namespace={name}"}
    failures: list[BaseException] = []

    def step(action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as err:  # keep cleaning; report afterwards
            failures.append(err)

    def remove_all(kind: str) -> bool:
        collection = getattr(client, kind)
        for item in collection.list(filters=namespace):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                item.remove()
        return not collection.list(filters=namespace)

    def remove_records() -> None:
        # State the receiver keeps in Swarm configs is not part of the stack: find it by label.
        for cfg in client.configs.list(filters={"label": RECORD_LABEL}):
            if cfg.attrs["Spec"].get("Labels", {}).get(RECORD_LABEL, "").startswith(f"{name}_"):
                with contextlib.suppress(docker.errors.NotFound):
                    cfg.remove()

    def remove_secret() -> None:
        with contextlib.suppress(docker.errors.NotFound):
            client.secrets.get(secret_name).remove()

    step(lambda: subprocess.run(["docker", "stack", "rm", name], capture_output=True, timeout=60))
    step(lambda: wait_for(lambda: not client.api.containers(all=True, filters=namespace), 90,
                          f"the containers of {name} to go"))
    for kind in ("services", "networks", "configs", "volumes"):
        step(lambda k=kind: wait_for(lambda: remove_all(k), 60, f"the {k} of {name} to go", 1))
    step(remove_records)
    step(remove_secret)
    if failures:
        raise failures[0]


def set_node_label(client: docker.DockerClient, node_id: str, value: str | None) -> None:
    """Sets (or with None removes) the node label ``ollama``, retrying on a concurrent update."""
    for _ in range(10):
        node = client.nodes.get(node_id)
        spec = node.attrs["Spec"]
        labels = dict(spec.get("Labels") or {})
        if value is None:
            labels.pop(NODE_LABEL, None)
        else:
            labels[NODE_LABEL] = value
        try:
            node.update({**spec, "Labels": labels})
            return
        except docker.errors.APIError as err:
            if "out of sequence" not in str(err):
                raise
    raise AssertionError(f"could not update the labels of node {node_id}")


@dataclass(frozen=True)
class StackEdits:
    """What a test module changes in the shipped files, as an operator would (a module sets
    ``STACK_EDITS``): the receiver's configuration and Alertmanager's (parsed, edited in place),
    and text replacements in the rule files (which then select the stack's service)."""

    receiver: Callable[[dict[str, Any]], None] | None = None
    alertmanager: Callable[[dict[str, Any]], None] | None = None
    rules: tuple[tuple[str, str], ...] = ()
    compose: str = ""  # one more Compose file on top of stack.yml and override.yml (its text)


def scale_downs_unmuted(config: dict[str, Any]) -> None:
    """A StackEdits.alertmanager: the shipped scale-down route neither muted in business hours
    (a test must not depend on the hour it runs) nor repeated less often than every minute."""
    (autoscaler,) = config["route"]["routes"]
    (down,) = autoscaler["routes"]
    down.pop("mute_time_intervals")
    down["repeat_interval"] = "1m"


def receiver_config_for(stack_name: str, directory: Path, edits: StackEdits | None = None) -> Path:
    """deploy/autoscaler.yml with the Ollama service renamed for this stack, and ``edits``."""
    data = yaml.safe_load(RECEIVER_CONFIG.read_text())
    data["services"] = {f"{stack_name}_ollama": data["services"][SHIPPED_SERVICE]}
    if edits is not None and edits.receiver is not None:
        edits.receiver(data)
    path = directory / "autoscaler.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rules_for(stack_name: str, directory: Path, edits: StackEdits | None = None) -> Path:
    """rules/ with the shipped service name renamed for this stack, as an operator deploying
    under another name is told to do (stack.yml's header); the folder for RULES_DIR. Each edit
    must match exactly once over the files (after the rename): one that matches nothing fails."""
    folder = directory / "rules"
    folder.mkdir()
    texts = {f.name: f.read_text().replace(SHIPPED_SERVICE, f"{stack_name}_ollama") for f in RULES}
    for old, new in edits.rules if edits is not None else ():
        found = sum(text.count(old) for text in texts.values())
        assert found == 1, f"rule edit {old!r} matches {found} times, not once"
        texts = {name: text.replace(old, new) for name, text in texts.items()}
    for name, text in texts.items():
        (folder / name).write_text(text)
    return folder


def alertmanager_config_for(directory: Path, edits: StackEdits) -> Path:
    data = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    if edits.alertmanager is not None:
        edits.alertmanager(data)
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextlib.contextmanager
def deployed_stack(client: docker.DockerClient, *, live_rules: bool = False,
                   edits: StackEdits | None = None) -> Iterator[Stack]:
    """Deploys stack.yml under a unique name; removes it and all it made on the way out.

    ``live_rules``: Prometheus gets the rules renamed for this stack's Ollama service, so its
    alerts fire for it; otherwise the shipped rules, which select no service of a test stack."""
    name = f"{STACK_PREFIX}{uuid.uuid4().hex[:6]}"
    node_id = client.info()["Swarm"]["NodeID"]
    label_before = (client.nodes.get(node_id).attrs["Spec"].get("Labels") or {}).get(NODE_LABEL)
    token = secrets.token_hex(24)
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        workdir = Path(tmp)
        env = {
            "STACK_NAME": name,
            "AUTOSCALER_CONFIG": str(receiver_config_for(name, workdir, edits)),
            "AUTOSCALER_TOKEN_SECRET": f"{name}-token",
            "TRAEFIK_HTTP_PORT": str(free_port()),
            "OLLAMA_PORT": str(free_port()),
            "AUTOSCALER_REPLICAS": "1",  # one manager here; two receivers need two managers
            # The gate unprivileged: the receiver's user in the group that owns the socket here.
            "DOCKER_GATE_USER": f"10001:{os.stat(DOCKER_SOCKET).st_gid}",
            # The shipped files unless the module edits them, whatever the shell exported.
            "RULES_DIR": str(ROOT / "rules"),
            "ALERTMANAGER_CONFIG": str(ALERTMANAGER_CONFIG),
        }
        if live_rules or edits is not None:
            env["RULES_DIR"] = str(rules_for(name, workdir, edits))
        if edits is not None and edits.compose:
            (workdir / "edits.yml").write_text(edits.compose)
        if edits is not None and edits.alertmanager is not None:
            env["ALERTMANAGER_CONFIG"] = str(alertmanager_config_for(workdir, edits))
        stack = Stack(name=name, client=client, token=token, env=env, workdir=workdir, node_id=node_id)
        try:
            # Without the label no node may run Ollama: its task must wait, not land anywhere.
            set_node_label(client, node_id, None)
            client.secrets.create(name=stack.secret_name, data=token.encode(),
                                  labels={"io.swarm-autoscaler.test-stack": name})
            started = time.monotonic()
            stack.deploy()
            stack.observed["unplaced_ollama_task"] = wait_for(
                lambda: next((t["Status"] for t in client.api.tasks(filters={"service": stack.ollama})
                              if t["Status"]["State"] == "pending" and t["Status"].get("Err")), None),
                60, "the Ollama task to wait for a labelled node")
            stack.observed["ollama_running_before_label"] = len(stack.containers("ollama"))
            set_node_label(client, node_id, "true")
            stack.wait_converged(180)
            wait_for(lambda: stack.health("autoscaler") == "healthy", 90, "the receiver's container to be healthy", 1)
            seconds = stack.observed["deploy_to_healthy_seconds"] = time.monotonic() - started
            print(f"\n{name}: deployed and healthy in {seconds:.0f}s", file=sys.stderr)
            yield stack
        finally:
            try:
                stack.remove()
            finally:
                set_node_label(client, node_id, label_before)
