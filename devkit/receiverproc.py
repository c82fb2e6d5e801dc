"""The receiver as a real process (``python -m receiver serve``) on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from .waiting import free_port, wait_for

# The environment the image runs the receiver with (Dockerfile): the same here, so that what the
# tests and the benchmarks run (memory included) is what ships.
IMAGE_ENV = {"PYTHONOPTIMIZE": "2", "PYDANTIC_DISABLE_PLUGINS": "__all__"}

class ReceiverProcess:
    """Writes a config and a token into ``workdir`` and runs the receiver on a loopback port.

    ``restart()`` runs it again on the same port (Alertmanager keeps the same webhook URL).
    """

    def __init__(self, workdir: Path, config: dict[str, Any], token: str = "t0ken", *,
                 port: int | None = None, wait_ready: bool = True):
        workdir.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.token_file = workdir / "token"
        self.token_file.write_text(token + "\n")
        # No status cache unless asked: a test reads /-/ready and /status right after changing the swarm.
        config = {"status_cache": 0, **config, "auth": {"bearer_token_file": str(self.token_file)}}
        self.port = port or free_port()
        self.config_path = workdir / f"receiver-{self.port}.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"receiver-{self.port}.log"
        self._log = self.log_path.open("a")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start(wait_ready)

    def start(self, wait_ready: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve", "--config", str(self.config_path), "--listen", f"127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, **IMAGE_ENV},  # as the image runs it (Dockerfile)
        )
        wait_for(self._ready if wait_ready else self._healthy, 30, "the receiver to start")

    def _get_status(self, path: str) -> int:
        assert self.proc is not None and self.proc.poll() is None, self.log_path.read_text()
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return 0

    def _ready(self) -> bool:
        return self._get_status("/-/ready") == 200

    def _healthy(self) -> bool:
        return self._get_status("/-/healthy") == 200

    def status_of(self, path: str) -> int:
        return self._get_status(path)

    @property
    def webhook_url(self) -> str:
        return self.url + "/webhook"

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}

    def post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(self.webhook_url, data=json.dumps(body).encode(), headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            return r.read().decode()

    def decisions(self) -> list[dict[str, Any]]:
        """Every decision line the process logged so far (across restarts)."""
        out = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{") and '"event": "decision"' in line:
                out.append(json.loads(line))
        return out

    def stop(self) -> str:
        """SIGTERM (then kill) and reap; the log so far. Idempotent; ``start()`` runs it again."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.flush()
        return self.log_path.read_text()

    def close(self) -> str:
        out = self.stop()
        self._log.close()
        return out

    def __enter__(self) -> ReceiverProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format, summed over matching series (0 if none)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


class GateProcess(ReceiverProcess):
    """The docker gate (``python -m receiver gate``) on a loopback port, in front of the local
    engine's socket; ``config`` is a receiver configuration (its ``services`` are the gate's scope).
    Point a receiver at it with ``{"docker": {"host": gate.docker_host}}``. ``wait_ready=False``
    waits only for an answer (a 502 when ``docker`` answers nothing)."""

    def __init__(self, workdir: Path, config: dict[str, Any], *, docker: str = "unix:///var/run/docker.sock",
                 wait_ready: bool = True):
        self.docker = docker
        super().__init__(workdir, config, wait_ready=wait_ready)

    def start(self, wait_ready: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "gate", "--config", str(self.config_path),
             "--listen", f"127.0.0.1:{self.port}", "--docker", self.docker],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        answers = (200,) if wait_ready else (200, 502)
        wait_for(lambda: self._get_status("/_ping") in answers, 30, "the gate to start")

    @property
    def docker_host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"
