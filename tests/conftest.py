from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from receiver.app import create_app
from receiver.config import parse_config

from .fakes import FakeService, FakeSwarm


class Clock:
    """A settable clock in epoch seconds."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def alert(service: str | None = "ollama_ollama", scale: str | None = "up", *, status: str = "firing",
          desired: str | None = None, name: str = "OllamaHighCPU") -> dict[str, Any]:
    labels = {"alertname": name}
    if service is not None:
        labels["service"] = service
    if scale is not None:
        labels["scale"] = scale
    annotations = {"summary": "test"}
    if desired is not None:
        annotations["desired_replicas"] = desired
    return {
        "status": status, "labels": labels, "annotations": annotations,
        "startsAt": "2026-12-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-01T00:10:00Z",
        "generatorURL": "http://prometheus/graph", "fingerprint": f"{service}-{scale}-{name}",
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0, "receiver": "autoscaler",
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": list(alerts), "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager",
    }


SERVICE_CONFIG = {"min_replicas": 1, "max_replicas": 4, "scale_up_cooldown": "2m", "scale_down_cooldown": "5m"}


def make_config(**overrides: Any):
    # No background reconciling: these tests count every Docker call (tests/test_reconcile.py covers it).
    data = {"services": {"ollama_ollama": dict(SERVICE_CONFIG)}, "docker": {"timeout": "2s"}, "reconcile_interval": 0}
    data.update(overrides)
    return parse_config(data)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake() -> FakeSwarm:
    return FakeSwarm(FakeService("ollama_ollama", replicas=1))


@pytest.fixture
def make_client(aiohttp_client, clock, fake) -> Callable[..., Any]:
    """Build the production app on a fake swarm; returns (client, registry)."""

    async def build(*, swarm: FakeSwarm | None = None, token: str | None = None, **config: Any):
        registry = CollectorRegistry()
        app = create_app(make_config(**config), swarm or fake, registry=registry, clock=clock, token=token)
        return await aiohttp_client(app), registry

    return build


def post_json(client, body: Any, **kw: Any):
    return client.post("/webhook", data=json.dumps(body), headers={"Content-Type": "application/json", **kw.pop("headers", {})}, **kw)


# --- figures: tests that measure something print it at the end of the run -----------------------

FIGURES: list[str] = []


def report(line: str) -> None:
    """Record a figure for the end-of-run summary (and the README's reliability section)."""
    FIGURES.append(line)
