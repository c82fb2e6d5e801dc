"""Fixtures for tests against a real Alertmanager: a webhook capture, a token file, a runner."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from receiver.harness import Running, start_alertmanager

REPO = Path(__file__).resolve().parents[2]
SHIPPED_ALERTMANAGER = REPO / "alertmanager" / "alertmanager.yml"


@dataclass
class Delivery:
    """One POST that reached the stand-in webhook."""

    received_at: float
    authorization: str | None
    body: dict[str, Any]


@dataclass
class WebhookCapture:
    """Stands in for the autoscaler: records every POST /webhook and answers 200."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.deliveries.append(Delivery(time.monotonic(), request.headers.get("Authorization"), body))
        return web.json_response({"ok": True})

    def alerts(self, status: str | None = None, **labels: str) -> list[tuple[Delivery, dict[str, Any]]]:
        """(delivery, alert) for every delivered alert with these labels (and status)."""
        return [
            (delivery, alert)
            for delivery in self.deliveries
            for alert in delivery.body["alerts"]
            if (status is None or alert["status"] == status)
            and all(alert["labels"].get(k) == v for k, v in labels.items())
        ]

    def summary(self) -> str:
        return "\n".join(
            f"{d.received_at:.2f} {a['status']} {a['labels']}" for d in self.deliveries for a in d.body["alerts"]
        ) or "(nothing delivered)"

    async def wait_for(self, status: str | None = None, timeout: float = 10.0, **labels: str) -> Delivery:
        """The first delivery of an alert with these labels; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.alerts(status, **labels)
            if found:
                return found[0][0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {status or ''} alert {labels} within {timeout}s; delivered:\n{self.summary()}")


@pytest.fixture
async def webhook(aiohttp_server: Callable[[web.Application], Awaitable[Any]]) -> WebhookCapture:
    capture = WebhookCapture()
    app = web.Application()
    app.router.add_post("/webhook", capture.handle)
    server = await aiohttp_server(app)
    capture.url = str(server.make_url("/webhook"))
    return capture


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="alertmanager-test-") as path:
        yield Path(path)


@dataclass(frozen=True)
class Token:
    path: Path
    value: str


@pytest.fixture
def token(workdir: Path) -> Token:
    value = secrets.token_urlsafe(16)
    path = workdir / "autoscaler_token"
    path.write_text(value + "\n", encoding="utf-8")
    return Token(path, value)


@pytest.fixture
async def alertmanager(workdir: Path) -> AsyncIterator[Callable[[str], Awaitable[Running]]]:
    """Starts Alertmanager with a configuration text; stops and reaps it after the test."""
    started: list[Running] = []

    async def start(config_text: str) -> Running:
        running = await asyncio.to_thread(start_alertmanager, config_text, workdir)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
