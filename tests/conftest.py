from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from devkit.fakes import FakeService, FakeSwarm
from devkit.payloads import alert, payload
from receiver.app import create_app
from receiver.asyncswarm import AsyncSwarm
from receiver.config import parse_config
from receiver.metrics import Metrics
from receiver.models import WebhookPayload
from receiver.scaler import Scaler

SERVICE = "ollama_ollama"
__all__ = ["SERVICE", "alert", "notify", "payload", "post_json", "report", "sample"]


class Clock:
    """A settable clock in epoch seconds."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


SERVICE_CONFIG = {"min_replicas": 1, "max_replicas": 4, "scale_up_cooldown": "2m", "scale_down_cooldown": "5m"}


def make_config(**overrides: Any):
    # No background reconciling: these tests count every Docker call (tests/test_reconcile.py covers it).
    # No status cache: each read of /status and /-/ready reads the fake (test_http.py tests the cache).
    data = {"services": {"ollama_ollama": dict(SERVICE_CONFIG)}, "docker": {"timeout": "2s"}, "reconcile_interval": 0,
            "status_cache": 0}
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


@pytest.fixture
def make_scaler(clock, fake) -> Any:
    """Build the scaler as create_app does, without HTTP; returns (scaler, registry)."""
    swarms: list[AsyncSwarm] = []

    def build(*, swarm: FakeSwarm | None = None, **config: Any) -> tuple[Scaler, CollectorRegistry]:
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        cfg = make_config(**config)
        swarms.append(AsyncSwarm(swarm or fake, cfg.docker.timeout, metrics.observe_docker))
        return Scaler(cfg, swarms[-1], metrics, clock), registry

    yield build
    for s in swarms:
        s.close()


async def notify(scaler: Scaler, *alerts: dict[str, Any]) -> dict[str, Any]:
    """What the webhook would answer for a notification of ``alerts``."""
    return (await scaler.handle(WebhookPayload.model_validate(payload(*alerts)))).as_dict()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def post_json(client, body: Any, **kw: Any):
    return client.post("/webhook", data=json.dumps(body), headers={"Content-Type": "application/json", **kw.pop("headers", {})}, **kw)


# --- figures: tests that measure something print it at the end of the run -----------------------

FIGURES: list[str] = []


def report(line: str) -> None:
    """Record a figure for the end-of-run summary (and the README's reliability section)."""
    FIGURES.append(line)
