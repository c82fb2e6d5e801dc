"""Ollama behind the real Traefik on the local swarm, for the loop: what a client and Prometheus see.

``OllamaBehindTraefik(name)`` creates, on an overlay network of its own:

- the Ollama service ``name``, from the stack's Ollama image (the stand-in scripts/local-images
  builds), with the stack's health check (taken from stack.yml: it passes once the model
  answers), a CPU limit, and the Traefik labels of stack.yml (a router on an entry point named
  after the service, a health-checked Traefik service named after it);
- a Traefik service from the stack's Traefik image with the stack's Ollama entry point settings
  (one request per connection, so its traefik_open_connections are the requests in flight) and
  the Swarm provider on the engine's socket, its entry point and its metrics published in host
  mode on free loopback ports (service VIPs and ingress ports do not answer on this machine).

``start_cadvisor(workdir)`` runs the cAdvisor stand-in of scripts/local-images as a local
process (it reads the host's cgroups and Docker socket), so the loop's CPU is measured.
Image names follow the stack's *_IMAGE variables and defaults, as scripts/local-images builds them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import yaml
from docker.types import EndpointSpec, Healthcheck, Resources, ServiceMode

from receiver.timeutil import parse_duration

from .procs import Running
from .standin import remove_records
from .waiting import free_port

ROOT = Path(__file__).resolve().parents[1]
STACK_FILE = ROOT / "stack.yml"
CADVISOR_STANDIN = ROOT / "scripts" / "local-images.d" / "cadvisor-standin.py"


def stack_setting(variable: str) -> str:
    """A setting stack.yml reads as ``${VARIABLE:-default}``, as ``docker stack deploy`` resolves it."""
    found = re.search(r"\$\{" + re.escape(variable) + r":-([^}]+)\}", STACK_FILE.read_text())
    if found is None:
        raise ValueError(f"{STACK_FILE}: no variable {variable}")
    return os.environ.get(variable) or found.group(1)


MODEL = stack_setting("OLLAMA_MODEL")


def _stack_ollama() -> dict[str, Any]:
    return yaml.safe_load(STACK_FILE.read_text())["services"]["ollama"]


def _ns(duration: str) -> int:
    return round(parse_duration(duration) * 1e9)


def stack_healthcheck(start_period: str = "60s") -> Healthcheck:
    """stack.yml's Ollama health check (``$$`` is Compose's escaped ``$``)."""
    check = _stack_ollama()["healthcheck"]
    return Healthcheck(
        test=[part.replace("$$", "$") for part in check["test"]],
        interval=_ns(check["interval"]), timeout=_ns(check["timeout"]), retries=check["retries"],
        start_period=_ns(start_period),
    )


@dataclass
class OllamaBehindTraefik:
    name: str
    replicas: int = 1
    cpu_limit: float = 1.0
    env: dict[str, str] = field(default_factory=dict)  # the stand-in's knobs (OLLAMA_STANDIN_*) and Ollama's
    stop_grace_period: str = "5m"
    client: docker.DockerClient = field(default_factory=lambda: docker.from_env(timeout=60))

    def __post_init__(self) -> None:
        self.port = free_port()  # the Ollama entry point, on the host
        self.metrics_port = free_port()  # Traefik's /metrics and /ping
        self._made: list[Any] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_target(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    def start(self) -> OllamaBehindTraefik:
        try:
            net = self.client.networks.create(f"{self.name}-net", driver="overlay", attachable=True)
            self._made.append(net)
            self._made.append(self._traefik(net.id))
            self._made.append(self._ollama(net.id))
            self.wait_routed()
        except BaseException:
            self.stop()
            raise
        return self

    def _traefik(self, network: str) -> Any:
        ep = self.name
        return self.client.services.create(
            stack_setting("TRAEFIK_IMAGE"), name=f"{self.name}-traefik",
            args=[
                f"--entrypoints.{ep}.address=:11434",
                f"--entrypoints.{ep}.transport.keepAliveMaxRequests=1",
                f"--entrypoints.{ep}.transport.respondingTimeouts.readTimeout=0s",
                f"--entrypoints.{ep}.transport.respondingTimeouts.writeTimeout=0s",
                "--entrypoints.traefik.address=:8080",
                "--providers.swarm=true", "--providers.swarm.endpoint=unix:///var/run/docker.sock",
                "--providers.swarm.exposedByDefault=false", "--providers.swarm.refreshSeconds=1",
                f"--providers.swarm.constraints=Label(`io.swarm-autoscaler.loop`,`{self.name}`)",
                "--ping=true", "--metrics.prometheus=true",
                "--metrics.prometheus.addServicesLabels=true", "--metrics.prometheus.addEntryPointsLabels=true",
                "--log.level=WARN",
            ],
            mounts=["/var/run/docker.sock:/var/run/docker.sock:ro"],
            networks=[network],
            endpoint_spec=EndpointSpec(mode="dnsrr", ports={
                self.port: (11434, "tcp", "host"), self.metrics_port: (8080, "tcp", "host")}),
            mode=ServiceMode("replicated", replicas=1),
        )

    def _ollama(self, network: str) -> Any:
        svc = self.name
        labels = {
            "io.swarm-autoscaler.loop": self.name,
            "traefik.enable": "true",
            f"traefik.http.routers.{svc}.rule": "PathPrefix(`/`)",
            f"traefik.http.routers.{svc}.entrypoints": svc,
            f"traefik.http.routers.{svc}.service": svc,
            f"traefik.http.routers.{svc}.middlewares": f"{svc}-retry",
            f"traefik.http.middlewares.{svc}-retry.retry.attempts": "3",
            f"traefik.http.services.{svc}.loadbalancer.server.port": "11434",
            f"traefik.http.services.{svc}.loadbalancer.healthcheck.path": "/api/version",
            f"traefik.http.services.{svc}.loadbalancer.healthcheck.interval": "2s",
            f"traefik.http.services.{svc}.loadbalancer.healthcheck.timeout": "1s",
        }
        env = {"OLLAMA_HOST": "0.0.0.0:11434", "OLLAMA_NUM_PARALLEL": "4", "OLLAMA_MODEL": MODEL, **self.env}
        return self.client.services.create(
            stack_setting("OLLAMA_IMAGE"), name=svc, labels=labels, env=[f"{k}={v}" for k, v in env.items()],
            networks=[network], healthcheck=stack_healthcheck(),
            stop_grace_period=_ns(self.stop_grace_period),
            resources=Resources(cpu_limit=int(self.cpu_limit * 1e9)),
            mode=ServiceMode("replicated", replicas=self.replicas),
        )

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30) -> tuple[int, bytes]:
        return ollama_request(self.port, method, path, body, timeout)

    def wait_routed(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if self.request("GET", "/api/version", timeout=2)[0] == 200:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"Traefik did not route to {self.name} within {timeout}s")

    def open_connections(self) -> float | None:
        """traefik_open_connections of the Ollama entry point, read live from Traefik."""
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=5)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        return open_connections(text, self.name)

    def stop(self) -> None:
        for thing in reversed(self._made):
            with contextlib.suppress(docker.errors.NotFound):
                thing.remove()
        if self._made:
            deadline = time.monotonic() + 60
            label = {"label": f"com.docker.swarm.service.name={self.name}"}
            while self.client.containers.list(all=True, filters=label) and time.monotonic() < deadline:
                time.sleep(0.5)
            for net in (m for m in self._made if isinstance(m, docker.models.networks.Network)):
                for _ in range(20):
                    try:
                        net.remove()
                        break
                    except docker.errors.NotFound:
                        break
                    except docker.errors.APIError:
                        time.sleep(1)
        self._made.clear()
        remove_records(self.client, self.name)  # the loop's receiver kept records of this service
        self.client.close()

    def __enter__(self) -> OllamaBehindTraefik:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ollama_request(port: int, method: str, path: str, body: dict[str, Any] | None = None,
                   timeout: float = 30) -> tuple[int, bytes]:
    """One request to Ollama (through Traefik) on a loopback port: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def open_connections(metrics: str, entrypoint: str) -> float | None:
    """traefik_open_connections of an entry point in Traefik's /metrics text, or None."""
    prefix = f'traefik_open_connections{{entrypoint="{entrypoint}",protocol="TCP"}} '
    return next((float(line[len(prefix):]) for line in metrics.splitlines() if line.startswith(prefix)), None)


@dataclass
class Generation:
    """One streamed /api/generate on its own thread, read line by line as a client would."""

    port: int
    tokens: int
    model: str = MODEL
    chunks: list[float] = field(default_factory=list)  # monotonic time of each NDJSON line
    final: dict[str, Any] | None = None
    error: BaseException | None = None
    status: int | None = None
    ended_at: float = 0.0  # wall clock, to compare with Docker's timestamps

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=900)
        try:
            body = {"model": self.model, "prompt": "count", "options": {"num_predict": self.tokens}}
            conn.request("POST", "/api/generate", body=json.dumps(body), headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            self.status = response.status
            while line := response.readline():
                self.chunks.append(time.monotonic())
                self.final = json.loads(line)
        except Exception as err:  # the test reports it
            self.error = err
        finally:
            self.ended_at = time.time()
            conn.close()

    @property
    def started(self) -> bool:
        return bool(self.chunks)

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def complete(self) -> bool:
        """Ended with Ollama's final chunk after every token asked for."""
        return self.done and self.error is None and self.status == 200 and bool(self.final) \
            and self.final.get("done") is True and self.final.get("eval_count") == self.tokens


def unique_name(kind: str = "llm") -> str:
    return f"astest-{kind}-{uuid.uuid4().hex[:6]}"


def start_cadvisor(workdir: Path, timeout: float = 20) -> Running:
    """The cAdvisor stand-in as a local process on a free loopback port (reads this host's cgroups)."""
    port = free_port()
    log_path = workdir / "cadvisor.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen([sys.executable, str(CADVISOR_STANDIN), f"-port={port}", "-listen_ip=127.0.0.1"],
                               stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir)
    running = Running("cadvisor", port, workdir, process, log_path, log_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return running
        time.sleep(0.1)
    running.stop()
    raise RuntimeError(f"the cAdvisor stand-in did not answer within {timeout}s:\n{running.log()}")
