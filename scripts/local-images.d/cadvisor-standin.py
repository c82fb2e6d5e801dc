#!/usr/bin/python3
"""Stand-in for the `cadvisor` binary in scripts/local-images' cAdvisor image (stdlib only).

No cAdvisor image can be had on a machine without a registry, so this measures what the
stack's rules read, for real, under cAdvisor's metric and label names: for every running
container on this node (listed through the Docker socket) its cgroup CPU time, CPU limit and
memory, with the Swarm labels cAdvisor copies (-whitelisted_container_labels):

  container_cpu_usage_seconds_total{cpu="total"}   cgroup CPU time (v1 cpuacct.usage, v2 usage_usec)
  container_spec_cpu_quota, container_spec_cpu_period   only for a container with a CPU limit
  container_memory_usage_bytes, container_memory_working_set_bytes, container_spec_memory_limit_bytes
  container_last_seen, machine_cpu_cores, machine_memory_bytes

Each series carries id (/docker/<container id>), name, image and
container_label_<label with . and - as _>. /healthz answers "ok". Arguments are accepted and
ignored, except -port (default 8080) and -listen_ip (default all addresses), as cAdvisor's.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOCKER_SOCKET = os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock")
CGROUP_ROOT = os.environ.get("CGROUP_ROOT", "/sys/fs/cgroup")
LABELS = (
    "com.docker.swarm.service.name", "com.docker.swarm.task.name",
    "com.docker.swarm.node.id", "com.docker.stack.namespace",
)


class DockerSocket(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.path)


def running_containers() -> list[dict]:
    conn = DockerSocket(DOCKER_SOCKET)
    try:
        conn.request("GET", "/containers/json?" + urllib.parse.urlencode({"filters": json.dumps({"status": ["running"]})}))
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


_found: dict[str, tuple[str, str]] = {}  # container id -> (cgroup version, directory)


def cgroup_of(container_id: str) -> tuple[str, str] | None:
    """The container's cgroup directory: v1 under cpuacct/, else v2; searched once, 5 levels deep."""
    if container_id in _found and os.path.isdir(_found[container_id][1]):
        return _found[container_id]
    for version, top in (("v1", os.path.join(CGROUP_ROOT, "cpuacct")), ("v2", CGROUP_ROOT)):
        if not os.path.isdir(top):
            continue
        base_depth = top.rstrip("/").count("/")
        for root, dirs, _ in os.walk(top):
            if root.count("/") - base_depth >= 5:
                dirs[:] = []
            for d in dirs:
                if container_id in d:
                    _found[container_id] = (version, os.path.join(root, d))
                    return _found[container_id]
    return None


def v1_dir(cpuacct_dir: str, controller: str) -> str:
    rel = os.path.relpath(cpuacct_dir, os.path.join(CGROUP_ROOT, "cpuacct"))
    return os.path.join(CGROUP_ROOT, controller, rel)


def measure(version: str, path: str) -> dict[str, float]:
    """CPU seconds, the CPU limit (quota, period in µs) and memory of one cgroup."""
    out: dict[str, float] = {}
    if version == "v1":
        usage = read(os.path.join(path, "cpuacct.usage"))
        if usage:
            out["cpu"] = int(usage) / 1e9
        quota = read(os.path.join(v1_dir(path, "cpu"), "cpu.cfs_quota_us"))
        period = read(os.path.join(v1_dir(path, "cpu"), "cpu.cfs_period_us"))
        if quota and period and int(quota) > 0:
            out["quota"], out["period"] = int(quota), int(period)
        memory = v1_dir(path, "memory")
        usage = read(os.path.join(memory, "memory.usage_in_bytes"))
        limit = read(os.path.join(memory, "memory.limit_in_bytes"))
        inactive = _stat(os.path.join(memory, "memory.stat")).get("total_inactive_file", 0)
    else:
        out["cpu"] = _stat(os.path.join(path, "cpu.stat")).get("usage_usec", 0) / 1e6
        cpu_max = (read(os.path.join(path, "cpu.max")) or "max").split()
        if cpu_max[0] != "max" and len(cpu_max) == 2:
            out["quota"], out["period"] = int(cpu_max[0]), int(cpu_max[1])
        usage = read(os.path.join(path, "memory.current"))
        limit = read(os.path.join(path, "memory.max"))
        inactive = _stat(os.path.join(path, "memory.stat")).get("inactive_file", 0)
    if usage:
        out["memory"] = int(usage)
        out["working_set"] = max(0, int(usage) - inactive)
    if limit and limit != "max" and int(limit) < 2**62:
        out["memory_limit"] = int(limit)
    return out


def _stat(path: str) -> dict[str, int]:
    values = {}
    for line in (read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.isdigit():
            values[key] = int(value)
    return values


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition() -> str:
    series: dict[str, list[str]] = {}

    def add(name: str, labels: str, value: float) -> None:
        series.setdefault(name, []).append(f"{name}{{{labels}}} {value}")

    now = time.time()
    for c in running_containers():
        found = cgroup_of(c["Id"])
        if found is None:
            continue
        values = measure(*found)
        labels = {"id": f"/docker/{c['Id']}", "name": (c.get("Names") or ["/"])[0].lstrip("/"), "image": c.get("Image", "")}
        for label in LABELS:
            if label in (c.get("Labels") or {}):
                labels["container_label_" + label.replace(".", "_").replace("-", "_")] = c["Labels"][label]
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        if "cpu" in values:
            add("container_cpu_usage_seconds_total", text + ',cpu="total"', values["cpu"])
        for key, name in (("quota", "container_spec_cpu_quota"), ("period", "container_spec_cpu_period"),
                          ("memory", "container_memory_usage_bytes"),
                          ("working_set", "container_memory_working_set_bytes"),
                          ("memory_limit", "container_spec_memory_limit_bytes")):
            if key in values:
                add(name, text, values[key])
        add("container_last_seen", text, now)
    lines = []
    for name, samples in series.items():
        lines += [f"# TYPE {name} {'counter' if name.endswith('_total') else 'gauge'}", *samples]
    meminfo = dict(line.split(":", 1) for line in (read("/proc/meminfo") or "").splitlines() if ":" in line)
    lines += ["# TYPE machine_cpu_cores gauge", f"machine_cpu_cores {os.cpu_count()}"]
    if "MemTotal" in meminfo:
        lines += ["# TYPE machine_memory_bytes gauge", f"machine_memory_bytes {int(meminfo['MemTotal'].split()[0]) * 1024}"]
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        try:
            status, body, ctype = {
                "/healthz": lambda: (200, "ok\n", "text/plain"),
                "/metrics": lambda: (200, exposition(), "text/plain; version=0.0.4"),
            }.get(path, lambda: (404, "not found\n", "text/plain"))()
        except OSError as err:  # the Docker socket is away: say so, as a failed scrape
            status, body, ctype = 503, f"{err}\n", "text/plain"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def main(argv: list[str]) -> int:
    port, listen_ip = 8080, "0.0.0.0"
    for arg in argv:
        if arg.startswith(("-port=", "--port=")):
            port = int(arg.split("=", 1)[1])
        if arg.startswith(("-listen_ip=", "--listen_ip=")):
            listen_ip = arg.split("=", 1)[1]
    server = ThreadingHTTPServer((listen_ip, port), Handler)
    print(f"cadvisor stand-in listening on :{port} (cgroups under {CGROUP_ROOT}, Docker at {DOCKER_SOCKET})", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
