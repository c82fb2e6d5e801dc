"""What every benchmark shares: statistics, the engine over raw HTTP, bench services, the machine."""

from __future__ import annotations

import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker

from devkit.standin import STANDIN_IMAGE, create_standin, remove_standin, unique
from devkit.waiting import wait_for
from receiver.state import STATE_LABELS, encode_time

ROOT = Path(__file__).resolve().parents[1]
BENCH_LABEL = "swarm-autoscaler.bench"  # on every service a benchmark creates, for cleanup
SOCKET = "/var/run/docker.sock"


# --- statistics -------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """n, median, p90, p99, mean and max in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "median": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "mean": statistics.fmean(ms) if ms else float("nan"),
        "max": max(ms) if ms else float("nan"),
    }


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (also readable on a terminal)."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# --- the engine over raw HTTP: the floor ------------------------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=30)
        self._path = path
        self.connects = 0

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock
        self.connects += 1


class RawEngine:
    """The Docker Engine API over one kept-alive connection to its socket: no SDK, no pool."""

    def __init__(self, path: str = SOCKET):
        self.conn = _UnixConnection(path)
        self.prefix = ""
        self.prefix = "/v" + self.request("GET", "/version")["ApiVersion"]

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        url = self.prefix + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.conn.request(method, url, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {raw[:200]!r}")
        return json.loads(raw) if raw else None

    def inspect(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/services/{name}")

    def tasks(self, service_id: str) -> list[dict[str, Any]]:
        filters = json.dumps({"service": [service_id], "desired-state": ["running"]})
        return self.request("GET", "/tasks", params={"filters": filters})

    def update(self, service: dict[str, Any], spec: dict[str, Any]) -> None:
        self.request("POST", f"/services/{service['ID']}/update", spec, {"version": service["Version"]["Index"]})

    def running(self, service_id: str) -> int:
        return sum(1 for t in self.tasks(service_id) if t["Status"]["State"] == "running")

    def close(self) -> None:
        self.conn.close()


# --- services the benchmarks create -----------------------------------------------------------

class BenchServices:
    """Creates stand-in services labelled for the benchmarks; ``close()`` removes them and their records.

    Services left by an interrupted earlier run (same label) are removed first.
    """

    def __init__(self) -> None:
        self.client = docker.from_env(timeout=60)
        info = self.client.info()
        if info["Swarm"]["LocalNodeState"] != "active" or not info["Swarm"]["ControlAvailable"]:
            raise SystemExit("the engine is not a swarm manager: run scripts/setup.sh")
        self.client.images.get(STANDIN_IMAGE)
        self.created: list[Any] = []
        leftovers = self.client.services.list(filters={"label": BENCH_LABEL})
        for service in leftovers:
            print(f"removing {service.name}, left by an earlier run")
        self._remove(leftovers)

    def create(self, kind: str, replicas: int = 1, *, cpu_limit: float | None = None,
               in_cooldown: bool = False, converge: bool = True) -> Any:
        """A service running /bin/sleep; ``in_cooldown``: it carries a last-scale-up label of now."""
        labels = {BENCH_LABEL: "true"}
        if in_cooldown:
            labels[STATE_LABELS["up"]] = encode_time(time.time())
        service = create_standin(self.client, unique(kind), replicas, labels=labels, cpu_limit=cpu_limit,
                                 stop_grace_period=0.1)
        self.created.append(service)
        if converge:
            self.wait_running(service, replicas)
        return service

    def wait_running(self, service: Any, replicas: int, timeout: float = 90) -> None:
        def done() -> bool:
            tasks = service.tasks(filters={"desired-state": "running"})
            return sum(1 for t in tasks if t["Status"]["State"] == "running") == replicas

        wait_for(done, timeout, f"{service.name} to run {replicas} tasks", interval=0.1)

    def _remove(self, services: list[Any]) -> None:
        for service in services:
            remove_standin(self.client, service.name)

    def close(self) -> None:
        self._remove(self.created)
        self.created = []
        self.client.close()


@contextmanager
def bench_services() -> Iterator[BenchServices]:
    services = BenchServices()
    try:
        yield services
    finally:
        services.close()


# --- processes and the machine ----------------------------------------------------------------

def rss_mb(pid: int) -> dict[str, float]:
    """Resident size now and at its peak (VmRSS, VmHWM) in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss": fields["VmRSS"], "peak": fields["VmHWM"]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def busy_processes(limit: int = 6) -> list[str]:
    """The processes using the most CPU over one second (what else was running)."""
    def snapshot() -> dict[int, tuple[float, str]]:
        out = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                out[int(entry.name)] = (cpu_seconds(int(entry.name)), cmd[:90])
            except OSError:
                continue
        return out

    before = snapshot()
    time.sleep(1)
    after = snapshot()
    used = [(after[p][0] - before[p][0], after[p][1]) for p in after if p in before and after[p][1]]
    used.sort(reverse=True)
    return [f"{share * 100:.0f}% {cmd}" for share, cmd in used[:limit] if share >= 0.02]


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))
    client = docker.from_env(timeout=30)
    try:
        version = client.version()
        info = client.info()
    finally:
        client.close()
    os_name = "unknown"
    os_release = Path("/etc/os-release")
    if os_release.exists():
        os_name = next((line.split("=", 1)[1].strip('"') for line in os_release.read_text().splitlines()
                        if line.startswith("PRETTY_NAME=")), os_name)
    dockerds = subprocess.run(["pgrep", "-c", "-x", "dockerd"], capture_output=True, text=True).stdout.strip() or "0"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{os.cpu_count()} × {cpu}",
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "os": f"{os_name}, kernel {platform.release()}",
        "docker": f"Engine {version['Version']} (API {version['ApiVersion']}), swarm {info['Swarm']['LocalNodeState']}, "
                  f"{info['Swarm'].get('Nodes', '?')} node(s), storage {info.get('Driver')}",
        "python": platform.python_version(),
        "dockerd_processes": int(dockerds),
    }


class Neighbours:
    """Samples, every ``interval`` s in a thread, the CPU of the processes that are not this run's:
    dockerds other than the local engine (another node of a test swarm, say) and everything else
    outside this process tree. ``section(name)`` marks what the run is doing; ``summary()`` gives
    per section the mean CPU of those processes (in cores) and the most other dockerds seen."""

    def __init__(self, interval: float = 2.0):
        import threading

        self.interval = interval
        self.samples: list[tuple[str, float, int]] = []  # section, other cores busy, other dockerds
        self.current = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="neighbours", daemon=True)
        try:
            self._engine = int(Path("/var/run/docker.pid").read_text())
        except (OSError, ValueError):
            self._engine = -1

    def _ours(self) -> set[int]:
        """This process and its descendants (the receivers, the load generator, Prometheus...)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        ours, todo = set(), [os.getpid()]
        while todo:
            pid = todo.pop()
            ours.add(pid)
            todo += children.get(pid, [])
        return ours

    def _snapshot(self) -> tuple[dict[int, float], int]:
        cpu, dockerds = {}, 0
        ours = self._ours() | {self._engine}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in ours:
                continue
            try:
                comm = (entry / "comm").read_text().strip()
                cpu[int(entry.name)] = cpu_seconds(int(entry.name))
            except OSError:
                continue
            # containerd, shims and the stand-in tasks belong to the local engine's work
            if comm in ("containerd", "containerd-shim", "containerd-shim-runc-v2", "sleep", "runc"):
                cpu.pop(int(entry.name))
            dockerds += comm == "dockerd"
        return cpu, dockerds

    def _run(self) -> None:
        before, _ = self._snapshot()
        last = time.monotonic()
        while not self._stop.wait(self.interval):
            after, dockerds = self._snapshot()
            now = time.monotonic()
            busy = sum(after[p] - before[p] for p in after if p in before)
            self.samples.append((self.current, busy / (now - last), dockerds))
            before, last = after, now

    def section(self, name: str) -> None:
        self.current = name

    def __enter__(self) -> Neighbours:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name in dict.fromkeys(s[0] for s in self.samples):
            mine = [s for s in self.samples if s[0] == name]
            out[name] = {"cores": round(statistics.fmean(s[1] for s in mine), 3),
                         "max_cores": round(max(s[1] for s in mine), 3),
                         "other_dockerds": max(s[2] for s in mine)}
        return out
