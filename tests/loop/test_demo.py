"""The README's main job: `python -m devkit.demo` runs the loop, prints its timeline and cleans up."""

from __future__ import annotations

import subprocess
import sys
import uuid

import docker
import pytest

pytestmark = [pytest.mark.swarm, pytest.mark.loop]


def test_the_demo_scales_up_and_back_down_and_removes_what_it_started(docker_client):
    service = f"astest-demo-{uuid.uuid4().hex[:6]}"
    result = subprocess.run(
        [sys.executable, "-m", "devkit.demo", "--service", service, "--time-scale", "0.0625"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "decision: up 1 -> 2 (scaled_up)" in out
    assert "decision: down" in out
    summary = out.split("summary:", 1)[1]
    assert "now 1/1" in summary
    assert "scaled_up" in summary
    with pytest.raises(docker.errors.NotFound):
        docker_client.services.get(service)
    assert not docker_client.configs.list(filters={"label": [f"swarm-autoscaler.record-of={service}"]})
