"""A live chain for the doctor: a stand-in service fed by the load simulator, Prometheus with the
shipped CPU rules, Alertmanager with the shipped routing, the receiver as a process (devkit.loop),
and the doctor run as a process against it, as an operator runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.loop import Loop
from devkit.standin import create_standin, remove_standin, unique, wait_running
from devkit.waiting import wait_for

from ..swarm.conftest import docker_client  # noqa: F401 - the real-swarm fixture


@dataclass
class Doctored:
    code: int
    out: str
    err: str

    def links(self) -> list[dict[str, Any]]:
        return json.loads(self.out)["links"]

    def broken(self) -> list[tuple[str, str]]:
        return [(link["link"], link["service"]) for link in self.links() if link["state"] == "broken"]


@dataclass
class Chain:
    loop: Loop
    workdir: Path

    @property
    def service(self) -> str:
        return self.loop.service

    def config(self, name: str = "doctor", **changes: Any) -> Path:
        """A copy of the receiver's configuration with ``changes`` (top-level keys) applied."""
        assert self.loop.receiver is not None
        config = {**yaml.safe_load(self.loop.receiver.config_path.read_text()), **changes}
        path = self.workdir / f"{name}.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def doctor(self, *args: str, config: Path | None = None, prometheus: str | None = None,
               alertmanager: str | None = None, as_json: bool = True) -> Doctored:
        assert self.loop.prometheus and self.loop.alertmanager and self.loop.receiver
        command = [sys.executable, "-m", "receiver", "doctor", "--config", str(config or self.config()),
                   "--prometheus", prometheus or self.loop.prometheus.url,
                   "--alertmanager", alertmanager or self.loop.alertmanager.url,
                   "--receiver", self.loop.receiver.url, *args]
        if as_json:
            command.append("--json")
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in done.stderr, done.stderr
        return Doctored(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def chain(docker_client, tmp_path_factory) -> Iterator[Chain]:  # noqa: F811 - the fixture above
    name = unique("doctor")
    create_standin(docker_client, name, 1, cpu_limit=1.0)
    try:
        wait_running(docker_client, name, 1)
        workdir = tmp_path_factory.mktemp("doctor")
        with Loop(name, workdir=workdir / "loop") as loop:
            loop.set_demand(0.3)  # utilisation 0.3: between the thresholds, nothing scales
            # A few evaluation cycles: every record the alerts read exists, the signal is complete.
            wait_for(lambda: loop.query(f'swarm_service:cpu_signal:complete{{service="{name}"}}'), 60,
                     "the CPU signal of the service to be complete", 0.5)
            yield Chain(loop, workdir)
    finally:
        remove_standin(docker_client, name)
