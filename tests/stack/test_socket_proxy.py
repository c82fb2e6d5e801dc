"""The receiver's socket proxy, tried from inside the deployed receiver's container."""

from __future__ import annotations

import json
import re

import pytest

from .deployment import RECEIVER_PYTHON, Stack

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
