"""Load simulator: cAdvisor-compatible CPU series for the tasks really running in the swarm.

cAdvisor is not packaged here, so the end-to-end loop and the demo scrape this exporter
instead. It lists the running tasks of one Swarm service on every scrape and shares a
scripted total demand (in CPU cores) among them, each task capped at its CPU limit, so
scaling the service really lowers each replica's utilisation and the loop closes.

Series, with cAdvisor's names and the Swarm labels cAdvisor copies from the containers:
``container_cpu_usage_seconds_total`` (a counter per task, ``cpu="total"``),
``container_spec_cpu_quota`` and ``container_spec_cpu_period`` (the task's limit, when it
has one) and ``machine_cpu_cores``. Only what the shipped rules read is simulated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import docker

PERIOD_US = 100_000


@dataclass(frozen=True)
class Task:
    id: str
    slot: int
    container_id: str


class LoadSimulator:
    def __init__(
        self,
        service: str,
        *,
        limit_cores: float | None = 1.0,
        machine_cores: int = 2,
        docker_client: docker.APIClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.service = service
        self.limit_cores = limit_cores
        self.machine_cores = machine_cores
        self.demand = 0.0  # total CPU cores the service is asked for
        self._api = docker_client or docker.from_env(timeout=10).api
        self._clock = clock
        self._lock = threading.Lock()
        self._usage: dict[str, float] = {}  # task id -> CPU seconds so far
        self._tasks: list[Task] = []
        self._last = clock()

    def set_demand(self, cores: float) -> None:
        with self._lock:
            self._advance()
            self.demand = max(0.0, cores)

    def cap(self) -> float:
        return self.limit_cores if self.limit_cores else float(self.machine_cores)

    def share(self, tasks: int) -> float:
        """CPU cores each of ``tasks`` running tasks uses at the current demand."""
        return 0.0 if tasks == 0 else min(self.demand / tasks, self.cap())

    def _running_tasks(self) -> list[Task]:
        tasks = self._api.tasks(filters={"service": self.service, "desired-state": "running"})
        running = []
        for t in tasks:
            if t.get("Status", {}).get("State") != "running":
                continue
            container = t["Status"].get("ContainerStatus", {}).get("ContainerID", t["ID"])
            running.append(Task(t["ID"], int(t.get("Slot", 0)), container))
        return sorted(running, key=lambda t: t.slot)

    def _advance(self) -> None:
        now = self._clock()
        elapsed, self._last = now - self._last, now
        per_task = self.share(len(self._tasks))
        for task in self._tasks:
            self._usage[task.id] = self._usage.get(task.id, 0.0) + per_task * elapsed

    def refresh(self) -> int:
        """Integrate usage up to now over the old task set, then read the new one."""
        tasks = self._running_tasks()
        with self._lock:
            self._advance()
            self._tasks = tasks
            for task in tasks:
                self._usage.setdefault(task.id, 0.0)
            return len(tasks)

    def exposition(self) -> str:
        """The Prometheus text format of the current state (call ``refresh`` first)."""
        with self._lock:
            self._advance()
            tasks, usage = list(self._tasks), dict(self._usage)
        lines = [
            "# TYPE container_cpu_usage_seconds_total counter",
            *(f"container_cpu_usage_seconds_total{{{self._labels(t)},cpu=\"total\"}} {usage[t.id]:.6f}" for t in tasks),
        ]
        if self.limit_cores:
            quota = int(self.limit_cores * PERIOD_US)
            lines += ["# TYPE container_spec_cpu_quota gauge", *(f"container_spec_cpu_quota{{{self._labels(t)}}} {quota}" for t in tasks)]
            lines += ["# TYPE container_spec_cpu_period gauge", *(f"container_spec_cpu_period{{{self._labels(t)}}} {PERIOD_US}" for t in tasks)]
        lines += ["# TYPE machine_cpu_cores gauge", f"machine_cpu_cores {self.machine_cores}"]
        return "\n".join(lines) + "\n"

    def _labels(self, task: Task) -> str:
        return (
            f'id="/docker/{task.container_id}",name="{self.service}.{task.slot}.{task.id}",'
            f'container_label_com_docker_swarm_service_name="{self.service}",'
            f'container_label_com_docker_swarm_task_name="{self.service}.{task.slot}.{task.id}"'
        )


def serve(sim: LoadSimulator, host: str = "127.0.0.1", port: int = 0) -> tuple[object, int]:
    """Serve ``/metrics`` (and ``POST /demand?cores=N``) in a background thread.

    Returns the server (call ``shutdown()`` on it) and the port it listens on.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlparse

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if urlparse(self.path).path != "/metrics":
                self.send_error(404)
                return
            try:
                sim.refresh()
            except docker.errors.DockerException as err:
                self.send_error(503, f"docker: {err}")
                return
            body = sim.exposition().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            try:
                cores = float(parse_qs(url.query)["cores"][0])
            except (KeyError, ValueError):
                self.send_error(400, "POST /demand?cores=N")
                return
            sim.set_demand(cores)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="loadsim").start()
    return server, server.server_address[1]
