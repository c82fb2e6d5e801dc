"""The escalations a taken-over receiver would try with its own Docker access, as HTTP requests.

Built on the host from what the engine really holds (every target's current spec and version,
the IDs of secrets, configs, networks and the node): the attacker is assumed to know all of it.
They are sent from inside the deployed receiver's container, to its own ``docker.host``
(``RUNNER`` runs there with the image's Python), so what is tested is exactly what a process in
that container can reach.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from receiver.record_store import RECORD_LABEL, RECORD_PREFIX
from receiver.state import PAUSE_LABEL

V = "/v1.41"
JSON = {"Content-Type": "application/json"}


@dataclass
class Attack:
    name: str
    method: str
    path: str
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    target: str = ""  # the service whose version must not move ("" for none)
    # An allowed read that must show nothing outside the receiver's scope: none of these strings.
    must_not_show: list[str] = field(default_factory=list)


RUNNER = r"""
import http.client, json, sys
host, port = sys.argv[2].removeprefix("tcp://").split(":")
results = []
for a in json.load(open(sys.argv[1])):
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        body = None if a["body"] is None else a["body"].encode()
        if a["chunked"]:
            half = len(body) // 2
            conn.request(a["method"], a["path"], body=iter([body[:half], body[half:]]), headers=a["headers"],
                         encode_chunked=True)
        else:
            conn.request(a["method"], a["path"], body=body, headers=a["headers"])
    except OSError:
        pass  # the gate may answer (413) before the whole body is sent: read that answer
    try:
        resp = conn.getresponse()
        results.append([resp.status, resp.read(20000).decode(errors="replace")])
    except Exception as err:
        results.append([0, f"{type(err).__name__}: {err}"])
    finally:
        conn.close()
print(json.dumps(results))
"""


def as_json(attacks: list[Attack]) -> str:
    return json.dumps([asdict(a) for a in attacks])


class Attacker:
    """Builds the attacks from the live objects: ``services`` maps a short name to its inspect."""

    def __init__(self, services: dict[str, dict[str, Any]], ids: dict[str, str]):
        self.services = services
        self.ids = ids  # secret, alertmanager_config, gate_network, node

    def update(self, name: str, target: str, change: Callable[[dict[str, Any]], None], *,
               spell: Callable[[str], str] = lambda text: text, query: str = "", version_offset: int = 0,
               headers: dict[str, str] | None = None, ref: str | None = None, chunked: bool = False) -> Attack:
        service = self.services[target]
        spec = copy.deepcopy(service["Spec"])
        change(spec)
        version = service["Version"]["Index"] + version_offset
        path = f"{V}/services/{ref or service['ID']}/update?version={version}{query}"
        return Attack(name, "POST", path, spell(json.dumps(spec)), {**JSON, **(headers or {})}, chunked, target)

    def container(self, name: str, target: str, key: str, value: Any, extend: bool = False) -> Attack:
        def change(spec: dict[str, Any]) -> None:
            container = spec["TaskTemplate"]["ContainerSpec"]
            container[key] = (container.get(key) or []) + value if extend else value
        return self.update(name, target, change)

    def volume(self, name: str, options: dict[str, str], **kw: Any) -> Attack:
        mount = {"Type": "volume", "Source": f"astest-intruder-{len(options)}", "Target": "/host",
                 "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": options}}}
        return self.update(name, "ollama", lambda s: s["TaskTemplate"]["ContainerSpec"].setdefault("Mounts", []).append(mount), **kw)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return change


def _label(key: str, value: str) -> Callable[[dict[str, Any]], None]:
    return lambda spec: spec.setdefault("Labels", {}).__setitem__(key, value)


def escalations(a: Attacker, stack: str) -> list[Attack]:
    """Writes to services: each must be refused and leave the target's version where it was."""
    ollama = a.services["ollama"]
    evil_image = "ollama/ollama:evil"
    return [
        a.volume("local volume, device //dev/vda", {"type": "ext4", "device": "//dev/vda"}),
        a.volume("local volume, device \\/dev\\/vda (JSON escape)", {"type": "ext4", "device": "/dev/vda"},
                 spell=lambda t: t.replace("/dev/vda", "\\/dev\\/vda")),
        a.volume("local volume, device /./dev/vda", {"type": "ext4", "device": "/./dev/vda"}),
        a.volume("local volume, device \\u002fdev\\u002fvda", {"type": "ext4", "device": "/dev/vda"},
                 spell=lambda t: t.replace("/dev/vda", "\\u002fdev\\u002fvda")),
        a.volume("local volume, o=bind of /", {"type": "none", "o": "bind", "device": "/"}),
        a.volume("local volume, overlay of /", {"type": "overlay", "device": "overlay",
                                                "o": "lowerdir=/,upperdir=/tmp/u,workdir=/tmp/w"}),
        a.volume("local volume, tmpfs with exec", {"type": "tmpfs", "device": "tmpfs", "o": "size=1g,exec"}),
        a.container("bind mount of /", "ollama", "Mounts", [{"Type": "bind", "Source": "/", "Target": "/host"}], True),
        a.container("bind mount of the Docker socket", "ollama", "Mounts",
                    [{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/s"}], True),
        a.container("tmpfs mount", "ollama", "Mounts", [{"Type": "tmpfs", "Target": "/t"}], True),
        a.container("image of ollama replaced", "ollama", "Image", evil_image),
        a.container("image of prometheus replaced", "prometheus", "Image", evil_image),
        a.container("command of ollama replaced", "ollama", "Command", ["/bin/sh", "-c", "id"]),
        a.container("args of traefik replaced", "traefik", "Args", ["--api.insecure=true"]),
        a.container("env LD_PRELOAD added", "ollama", "Env", ["LD_PRELOAD=/tmp/x.so"], True),
        a.container("user 0:0", "ollama", "User", "0:0"),
        a.container("capability CAP_SYS_ADMIN added", "ollama", "CapabilityAdd", ["CAP_SYS_ADMIN"]),
        a.container("seccomp unconfined", "ollama", "Privileges", {"Seccomp": {"Mode": "unconfined"}}),
        a.container("secret added (the webhook token)", "ollama", "Secrets", [{
            "SecretID": a.ids["secret"], "SecretName": a.ids["secret_name"],
            "File": {"Name": "t", "UID": "0", "GID": "0", "Mode": 292}}], True),
        a.container("config added (alertmanager.yml)", "ollama", "Configs", [{
            "ConfigID": a.ids["alertmanager_config"], "ConfigName": a.ids["alertmanager_config_name"],
            "File": {"Name": "/am.yml", "UID": "0", "GID": "0", "Mode": 292}}], True),
        a.update("port 2222 published", "ollama", _set("EndpointSpec.Ports", [
            {"Protocol": "tcp", "TargetPort": 22, "PublishedPort": 2222, "PublishMode": "host"}])),
        a.update("placement changed", "ollama", _set("TaskTemplate.Placement.Constraints", ["node.role == manager"])),
        a.update("attached to the gate's network", "ollama", lambda s: s["TaskTemplate"].setdefault("Networks", []).append(
            {"Target": a.ids["gate_network"]})),
        a.update("resource limits removed", "ollama", _set("TaskTemplate.Resources", {})),
        a.update("force update (restart every task)", "ollama", _set("TaskTemplate.ForceUpdate", 99)),
        a.update("traefik route label on ollama", "ollama", _label(f"traefik.http.routers.{stack}_x.rule", "PathPrefix(`/`)")),
        a.update("traefik.enable on prometheus", "prometheus", _label("traefik.enable", "true")),
        a.update("operator's pause label changed", "ollama", _label(PAUSE_LABEL, "false")),
        a.update("prometheus scaled to 7", "prometheus", _set("Mode.Replicated.Replicas", 7)),
        a.update("ollama scaled to 100 (beyond max_replicas)", "ollama", _set("Mode.Replicated.Replicas", 100)),
        a.update("ollama made global", "ollama", _set("Mode", {"Global": {}})),
        a.update("duplicate key: a second TaskTemplate", "ollama", lambda s: None, spell=lambda t: t[:-1] + (
            ', "TaskTemplate": {"ContainerSpec": {"Image": "' + evil_image + '"}}}')),
        a.update("other letter case: taskTemplate", "ollama", _set("taskTemplate", {"ContainerSpec": {"Image": evil_image}})),
        a.update("chunked body with a new image", "ollama", _set("TaskTemplate.ContainerSpec.Image", evil_image), chunked=True),
        a.update("rollback=previous", "ollama", lambda s: None, query="&rollback=previous"),
        a.update("registryAuthFrom=previous-spec", "ollama", lambda s: None, query="&registryAuthFrom=previous-spec"),
        a.update("X-Registry-Auth with a new image", "ollama", _set("TaskTemplate.ContainerSpec.Image", evil_image),
                 headers={"X-Registry-Auth": "eyJ1c2VybmFtZSI6ImEifQ=="}),
        a.update("a guessed next version", "ollama", lambda s: None, version_offset=1),
        a.update("by an ID prefix of prometheus", "prometheus", _set("Mode.Replicated.Replicas", 3),
                 ref=a.services["prometheus"]["ID"][:6]),
        a.update("update of the gate itself", "docker-gate", _set("TaskTemplate.ContainerSpec.Args", ["--help"])),
        a.update("update of cadvisor", "cadvisor", _set("TaskTemplate.ContainerSpec.Image", evil_image)),
        Attack("malformed JSON", "POST", f"{V}/services/{ollama['ID']}/update?version=1", '{"Name": ', JSON, target="ollama"),
        Attack("huge body (4 MiB)", "POST", f"{V}/services/{ollama['ID']}/update?version=1", " " * 4_000_000, JSON,
               target="ollama"),
    ]


def other_requests(a: Attacker, stack: str) -> list[Attack]:
    """Everything but service updates: refused, or (for the reads the receiver needs) shown only in scope."""
    prometheus = a.services["prometheus"]
    ollama = a.services["ollama"]
    create = json.dumps({"Name": "astest-intruder", "TaskTemplate": {"ContainerSpec": {"Image": "x"}}})
    record = json.dumps({"Name": f"{RECORD_PREFIX}intruder", "Data": "e30=",
                         "Labels": {RECORD_LABEL: prometheus["Spec"]["Name"]}})
    secret_and_nodes = [a.ids["node"], "JoinTokens", "NodeAddr", "RemoteManagers"]
    out = [
        Attack("service create", "POST", f"{V}/services/create", create, JSON),
        Attack("service remove (ollama)", "DELETE", f"{V}/services/{ollama['ID']}", target="ollama"),
        Attack("service remove (prometheus)", "DELETE", f"{V}/services/{prometheus['Spec']['Name']}", target="prometheus"),
        Attack("inspect prometheus", "GET", f"{V}/services/{prometheus['Spec']['Name']}"),
        Attack("inspect by an ID prefix", "GET", f"{V}/services/{prometheus['ID'][:6]}"),
        Attack("list services by the stack's prefix", "GET", f'{V}/services?filters={{"name":["{stack}"]}}',
               must_not_show=[prometheus["ID"], "prometheus"]),
        Attack("list all services", "GET", f"{V}/services"),
        Attack("tasks of every service", "GET", f"{V}/tasks"),
        Attack("tasks of prometheus", "GET", f'{V}/tasks?filters={{"service":["{prometheus["ID"]}"]}}'),
        Attack("info", "GET", f"{V}/info", must_not_show=secret_and_nodes),
        Attack("containers", "GET", f"{V}/containers/json"),
        Attack("container create", "POST", f"{V}/containers/create", json.dumps({"Image": "x", "HostConfig": {"Privileged": True}}), JSON),
        Attack("exec in a container", "POST", f"{V}/containers/x/exec", json.dumps({"Cmd": ["id"]}), JSON),
        Attack("exec start", "POST", f"{V}/exec/x/start", "{}", JSON),
        Attack("images", "GET", f"{V}/images/json"),
        Attack("image pull", "POST", f"{V}/images/create?fromImage=busybox"),
        Attack("build", "POST", f"{V}/build"),
        Attack("nodes", "GET", f"{V}/nodes"),
        Attack("node update", "POST", f"{V}/nodes/{a.ids['node']}/update?version=1", "{}", JSON),
        Attack("swarm join tokens", "GET", f"{V}/swarm"),
        Attack("swarm token rotation", "POST", f"{V}/swarm/update?version=1&rotateWorkerToken=true", "{}", JSON),
        Attack("swarm leave", "POST", f"{V}/swarm/leave?force=true"),
        Attack("secrets", "GET", f"{V}/secrets"),
        Attack("secret create", "POST", f"{V}/secrets/create", json.dumps({"Name": "astest-intruder", "Data": "eA=="}), JSON),
        Attack("every config", "GET", f"{V}/configs"),
        Attack("alertmanager.yml by ID", "GET", f"{V}/configs/{a.ids['alertmanager_config']}"),
        Attack("configs by name", "GET", f'{V}/configs?filters={{"name":["{stack}"]}}'),
        Attack("configs by stack label", "GET", f'{V}/configs?filters={{"label":["com.docker.stack.namespace={stack}"]}}'),
        Attack("config create (not a record)", "POST", f"{V}/configs/create",
               json.dumps({"Name": "astest-intruder", "Data": "e30="}), JSON),
        Attack("record of an unconfigured service", "POST", f"{V}/configs/create", record, JSON),
        Attack("config remove (alertmanager.yml)", "DELETE", f"{V}/configs/{a.ids['alertmanager_config']}"),
        Attack("volumes", "GET", f"{V}/volumes"),
        Attack("volume create", "POST", f"{V}/volumes/create", json.dumps({"Name": "astest-intruder"}), JSON),
        Attack("networks", "GET", f"{V}/networks"),
        Attack("plugins", "GET", f"{V}/plugins"),
        Attack("events", "GET", f"{V}/events"),
        Attack("system df", "GET", f"{V}/system/df"),
        Attack("path: services/../containers/json", "GET", f"{V}/services/../containers/json"),
        Attack("path: %2e%2e", "GET", f"{V}/services/%2e%2e/containers/json"),
        Attack("path: encoded slash", "GET", f"{V}/services%2F..%2Fcontainers%2Fjson"),
        Attack("path: double slash", "GET", f"/{V}//containers/json"),
        Attack("path: upper case", "GET", "/V1.41/CONTAINERS/JSON"),
        Attack("method: lower case get", "get", f"{V}/containers/json"),
        Attack("method: HEAD on containers", "HEAD", f"{V}/containers/json"),
        Attack("method: OPTIONS", "OPTIONS", f"{V}/services/{ollama['Spec']['Name']}"),
    ]
    return out
