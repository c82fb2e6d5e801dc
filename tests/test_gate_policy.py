"""The docker gate's pure checks: which requests are operations it knows, and what an update may change."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from receiver.gate.changes import first_difference, record_to_create, reduced_info, updated_spec
from receiver.gate.forward import Forwarder, handler_name
from receiver.gate.routes import Kind, Refused, parse_json, parse_request
from receiver.gate.scope import Bounds, Scope
from receiver.record_store import RECORD_LABEL, RECORD_VERSION_LABEL
from receiver.state import PAUSE_LABEL, STATE_LABELS

SCOPE = Scope({"ollama_ollama": Bounds(1, 4)})
UP = STATE_LABELS["up"]
SPEC = {
    "Name": "ollama_ollama",
    "Labels": {"traefik.enable": "true", "com.docker.stack.namespace": "ollama"},
    "Mode": {"Replicated": {"Replicas": 1}},
    "TaskTemplate": {
        "ContainerSpec": {"Image": "ollama/ollama:0.9.3", "Env": ["OLLAMA_HOST=0.0.0.0:11434"],
                          "Mounts": [{"Type": "volume", "Source": "models", "Target": "/root/.ollama/models"}]},
        "Placement": {"Constraints": ["node.labels.ollama == true"]},
        "Resources": {"Limits": {"NanoCPUs": 2000000000}},
    },
    "EndpointSpec": {"Mode": "vip"},
}


def filters(**f: list[str]) -> str:
    return "filters=" + json.dumps(f)


@pytest.mark.parametrize("method, path, kind", [
    ("GET", "/_ping", Kind.PING),
    ("HEAD", "/v1.41/_ping", Kind.PING),
    ("GET", "/version", Kind.VERSION),
    ("GET", "/v1.41/info", Kind.INFO),
    ("GET", "/v1.41/services?" + filters(name=["ollama_ollama"]), Kind.LIST_SERVICES),
    ("GET", "/v1.41/services/ollama_ollama", Kind.INSPECT_SERVICE),
    ("POST", "/v1.41/services/abc/update?version=12", Kind.UPDATE_SERVICE),
    ("GET", "/v1.41/tasks?" + filters(service=["abc"], **{"desired-state": ["running", "ready"]}), Kind.LIST_TASKS),
    ("GET", "/v1.41/configs?" + filters(label=[f"{RECORD_LABEL}=ollama_ollama"]), Kind.LIST_CONFIGS),
    ("POST", "/v1.41/configs/create", Kind.CREATE_CONFIG),
    ("DELETE", "/v1.41/configs/abc", Kind.REMOVE_CONFIG),
])
def test_the_receivers_own_requests_are_known_operations(method, path, kind):
    assert parse_request(method, path, {}, SCOPE).kind == kind


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/v1.41/containers/json", 403),
    ("POST", "/v1.41/containers/create", 403),
    ("POST", "/v1.41/containers/abc/exec", 403),
    ("GET", "/v1.41/images/json", 403),
    ("GET", "/v1.41/nodes", 403),
    ("GET", "/v1.41/swarm", 403),
    ("GET", "/v1.41/secrets", 403),
    ("POST", "/v1.41/services/create", 403),
    ("DELETE", "/v1.41/services/ollama_ollama", 403),
    ("GET", "/v1.41/configs/abc", 403),
    ("GET", "/v1.41/services/../containers/json", 403),
    ("GET", "/v1.41/services/%2e%2e/containers/json", 403),
    ("GET", "/v1.41/services%2Follama_ollama", 403),
    ("GET", "//v1.41/services/ollama_ollama", 403),
    ("GET", "/v1.41/./services/ollama_ollama", 403),
    ("GET", "/V1.41/services/ollama_ollama", 403),
    ("get", "/v1.41/services/ollama_ollama", 403),
    ("OPTIONS", "/v1.41/services/ollama_ollama", 403),
    ("HEAD", "/v1.41/services/ollama_ollama", 403),
    ("GET", "/v1.41/services", 403),  # a list without a name filter
    ("GET", "/v1.41/services?" + filters(label=["x"]), 403),
    ("GET", "/v1.41/tasks", 403),
    ("GET", "/v1.41/tasks?" + filters(service=["a", "b"]), 403),
    ("GET", "/v1.41/tasks?" + filters(service=["a"], node=["n"]), 403),
    ("GET", "/v1.41/configs", 403),
    ("GET", "/v1.41/configs?" + filters(label=[f"{RECORD_LABEL}=prometheus"]), 403),
    ("GET", "/v1.41/configs?" + filters(name=["alertmanager"]), 403),
    ("POST", "/v1.41/services/abc/update?version=1&rollback=previous", 403),
    ("POST", "/v1.41/services/abc/update?version=1&registryAuthFrom=previous-spec", 403),
    ("POST", "/v1.41/services/abc/update", 400),
    ("POST", "/v1.41/services/abc/update?version=1&version=2", 400),
    ("GET", "/v1.41/services?filters={bad", 400),
    ("GET", "/v1.41/services?" + filters(name="x"), 400),
])
def test_anything_else_is_refused_before_docker_is_asked(method, path, status):
    with pytest.raises(Refused) as refusal:
        parse_request(method, path, {}, SCOPE)
    assert refusal.value.status == status
    if status == 403:
        assert str(refusal.value).startswith("refused by the docker gate: ")


def test_registry_credentials_are_refused_whatever_the_path():
    with pytest.raises(Refused, match="X-Registry-Auth"):
        parse_request("POST", "/v1.41/services/abc/update?version=1", {"X-Registry-Auth": "e30="}, SCOPE)


@pytest.mark.parametrize("text", ['{"a": 1, "a": 2}', '{"a": NaN}', '{"a": Infinity}', "[" * 100_000, "{", b"\xff"])
def test_malformed_json_duplicate_keys_and_non_numbers_are_a_400(text):
    with pytest.raises(Refused) as refusal:
        parse_json(text)
    assert refusal.value.status == 400


def requested(**changes) -> dict:
    spec = copy.deepcopy(SPEC)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = spec
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return spec


def test_replicas_and_state_labels_may_change_and_the_sent_spec_is_built_from_the_current_one():
    body = requested(Mode__Replicated__Replicas=3)
    body["Labels"] = {**SPEC["Labels"], UP: "2026-12-01T00:00:00.000000Z"}
    sent = updated_spec(SPEC, body, "ollama_ollama", SCOPE)
    assert sent["Mode"] == {"Replicated": {"Replicas": 3}}
    assert sent["Labels"] == {**SPEC["Labels"], UP: "2026-12-01T00:00:00.000000Z"}
    assert first_difference({**SPEC, "Labels": None, "Mode": None}, {**sent, "Labels": None, "Mode": None}) is None


@pytest.mark.parametrize("body, field", [
    (requested(TaskTemplate__ContainerSpec__Image="evil:1"), "TaskTemplate.ContainerSpec.Image"),
    (requested(TaskTemplate__ContainerSpec__Command=["/bin/sh"]), "TaskTemplate.ContainerSpec.Command"),
    (requested(TaskTemplate__ContainerSpec__Env=["OLLAMA_HOST=0.0.0.0:11434", "LD_PRELOAD=/x.so"]),
     "TaskTemplate.ContainerSpec.Env[1]"),
    (requested(TaskTemplate__ContainerSpec__User="0:0"), "TaskTemplate.ContainerSpec.User"),
    (requested(TaskTemplate__ContainerSpec__Mounts=SPEC["TaskTemplate"]["ContainerSpec"]["Mounts"] + [
        {"Type": "volume", "Source": "d", "Target": "/d", "VolumeOptions": {
            "DriverConfig": {"Name": "local", "Options": {"type": "ext4", "device": "//dev/vda"}}}}]),
     "TaskTemplate.ContainerSpec.Mounts[1]"),
    (requested(TaskTemplate__ContainerSpec__CapabilityAdd=["CAP_SYS_ADMIN"]), "TaskTemplate.ContainerSpec.CapabilityAdd"),
    (requested(TaskTemplate__Placement__Constraints=[]), "TaskTemplate.Placement.Constraints[0]"),
    (requested(TaskTemplate__Resources=None), "TaskTemplate.Resources"),
    (requested(EndpointSpec__Ports=[{"TargetPort": 22, "PublishedPort": 2222}]), "EndpointSpec.Ports"),
    (requested(Labels__traefik_x="y"), "Labels.traefik_x"),
    (requested(Name="other"), "Name"),
    (requested(Mode={"Global": {}}), "Mode"),
    (requested(Mode__Replicated__Replicas=True), "Mode.Replicated.Replicas"),
    (requested(Mode__Replicated__Replicas=2.0), "Mode.Replicated.Replicas"),
    (requested(Mode__Replicated__Replicas=5), "outside ollama_ollama's configured bounds [1, 4]"),
    (requested(Mode__Replicated__Replicas=0), "outside ollama_ollama's configured bounds [1, 4]"),
    (requested(taskTemplate={"ContainerSpec": {"Image": "evil:1"}}), "taskTemplate"),
    (requested(TaskTemplate__ForceUpdate=1), "TaskTemplate.ForceUpdate"),
    ({k: v for k, v in SPEC.items() if k != "EndpointSpec"}, "EndpointSpec"),
])
def test_any_other_difference_is_refused_naming_the_field(body, field):
    with pytest.raises(Refused) as refusal:
        updated_spec(SPEC, body, "ollama_ollama", SCOPE)
    assert refusal.value.status == 403 and field in str(refusal.value)


@pytest.mark.parametrize("labels, why", [
    ({PAUSE_LABEL: "false"}, "Labels['swarm-autoscaler.paused']"),
    ({"swarm-autoscaler.anything": "x"}, "Labels['swarm-autoscaler.anything']"),
    ({UP: "yesterday"}, "not an RFC 3339 UTC time"),
    ({UP: 5}, "must be a string"),
])
def test_only_the_state_labels_are_the_receivers_to_write_and_only_as_times(labels, why):
    with pytest.raises(Refused, match=why.replace("[", r"\[").replace("]", r"\]")):
        updated_spec(SPEC, {**SPEC, "Labels": {**SPEC["Labels"], **labels}}, "ollama_ollama", SCOPE)


def test_a_state_label_is_never_removed_and_an_unchanged_count_outside_the_bounds_is_accepted():
    current = {**SPEC, "Labels": {UP: "2026-12-01T00:00:00Z"}, "Mode": {"Replicated": {"Replicas": 9}}}
    with pytest.raises(Refused, match="never removes"):
        updated_spec(current, {**current, "Labels": {}}, "ollama_ollama", SCOPE)
    assert updated_spec(current, current, "ollama_ollama", SCOPE)["Mode"]["Replicated"]["Replicas"] == 9


def test_null_empty_and_absent_are_the_same_and_types_are_compared_strictly():
    assert first_difference({"a": None}, {}) is None
    assert first_difference({"Labels": {}}, {"Mounts": []}) is None
    assert first_difference({"a": {}}, {"a": {"b": 1}}) == "a.b"
    assert first_difference({"a": 1}, {"a": True}) == "a"
    assert first_difference({"a": [1]}, {"a": [1, 2]}) == "a[1]"
    assert first_difference({"a.b": 1}, {"a.b": 2}) == "['a.b']"


def record_body(**changes) -> dict:
    body = {"Name": "swarm-autoscaler-record-0123456789ab-1", "Data": base64.b64encode(b'{"replicas": 2}').decode(),
            "Labels": {RECORD_LABEL: "ollama_ollama", RECORD_VERSION_LABEL: "1"}}
    body.update(changes)
    return body


def test_a_record_of_a_configured_service_may_be_created():
    assert record_to_create(record_body(Templating=None), SCOPE)[0] == "ollama_ollama"


@pytest.mark.parametrize("body, why", [
    (record_body(Name="alertmanager_config"), "Name"),
    (record_body(Labels={RECORD_LABEL: "prometheus"}), "configured service"),
    (record_body(Labels={RECORD_LABEL: "ollama_ollama", "traefik.enable": "true"}), "traefik.enable"),
    (record_body(Templating={"Name": "golang"}), "Templating"),
    (record_body(Data=base64.b64encode(b"x" * 40_000).decode()), "at most"),
    (record_body(Data=base64.b64encode(b"[1]").decode()), "JSON object"),
])
def test_any_other_config_is_refused(body, why):
    with pytest.raises(Refused, match=why):
        record_to_create(body, SCOPE)


def test_info_keeps_only_this_nodes_swarm_state():
    info = {"ID": "x", "Name": "host", "Swarm": {"NodeID": "n", "NodeAddr": "10.0.0.1", "LocalNodeState": "active",
                                                   "ControlAvailable": True, "RemoteManagers": [{"Addr": "10.0.0.2"}]}}
    assert reduced_info(info) == {"Swarm": {"LocalNodeState": "active", "ControlAvailable": True}}


def test_every_operation_has_a_handler():
    # Service events are a stream: the server relays them (server._events), the forwarder never sees them.
    assert all(callable(getattr(Forwarder, handler_name(kind), None)) for kind in Kind if kind is not Kind.EVENTS)


@pytest.mark.parametrize(("query", "allowed"), [
    ('filters={"type":["service"]}', True),
    ("", False),
    ('filters={"type":["container"]}', False),
    ('filters={"type":["service","container"]}', False),
    ('filters={"type":["service"],"service":["prometheus"]}', False),
    ('since=0&filters={"type":["service"]}', False),
], ids=["service events", "no filter: every event", "container events", "service and container events",
        "another service named", "a parameter it does not know"])
def test_events_are_service_events_of_the_configured_services_only(query, allowed):
    from urllib.parse import quote

    path = "/v1.41/events" + ("?" + "&".join(f"{k}={quote(v)}" for k, v in (p.split("=", 1) for p in query.split("&"))) if query else "")
    if allowed:
        op = parse_request("GET", path, {}, SCOPE)
        assert op.kind is Kind.EVENTS and set(op.names) == set(SCOPE.services)
    else:
        with pytest.raises(Refused):
            parse_request("GET", path, {}, SCOPE)
