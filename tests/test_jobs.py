"""Background jobs outlive their failures: each error is logged and counted, and the job goes on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from receiver.jobs import reconciling
from receiver.metrics import Metrics
from receiver.silences import freeze_matchers

from .conftest import SERVICE, sample


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class FailingScaler:
    """Stands in for the scaler: every reconcile raises something no one expected."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self.calls = 0

    async def reconcile(self) -> None:
        self.calls += 1
        raise RuntimeError(f"failure {self.calls}")


async def test_a_reconcile_job_that_raises_keeps_running_and_counts_every_error() -> None:
    registry = CollectorRegistry()
    scaler = FailingScaler(Metrics(registry))
    job = reconciling(scaler, 0.01)(web.Application())  # type: ignore[arg-type]
    await anext(job)
    try:
        await until(lambda: scaler.calls >= 5, "five reconciles")
    finally:
        await anext(job, None)  # the app's cleanup: cancels the job
    calls = scaler.calls
    assert sample(registry, "autoscaler_background_errors_total", job="reconcile") == calls
    await asyncio.sleep(0.05)
    assert scaler.calls == calls, "the job stops with the app"


async def test_a_silence_poll_that_raises_keeps_polling_and_shows_the_freeze_once_the_answer_is_readable(
        aiohttp_server: Any, make_client: Any) -> None:
    answer: list[dict[str, Any]] = [{  # a pattern RE2 refuses: judging it raises in the poller
        "id": "bad", "status": {"state": "active"}, "endsAt": "2026-12-01T12:00:00Z",
        "matchers": [{"name": "service", "value": "(", "isRegex": True, "isEqual": True}],
    }]

    async def silences(_: web.Request) -> web.Response:
        return web.json_response(answer)

    alertmanager = web.Application()
    alertmanager.router.add_get("/api/v2/silences", silences)
    server = await aiohttp_server(alertmanager)
    client, registry = await make_client(alertmanager={"url": str(server.make_url("")), "poll_interval": 0.01})

    def errors() -> float:
        return sample(registry, "autoscaler_background_errors_total", job="silences")

    await until(lambda: errors() >= 3, "three failed polls")
    resp = await client.get("/status")
    assert resp.status == 200
    assert "frozen" not in (await resp.json())["services"][0], "no silences read yet: nothing to report"

    answer[:] = [{"id": "good", "status": {"state": "active"}, "endsAt": "2026-12-01T12:00:00Z",
                  "matchers": freeze_matchers(SERVICE)}]
    await until(lambda: sample(registry, "autoscaler_frozen", service=SERVICE) == 1, "the freeze to show")
    resp = await client.get("/status")
    assert (await resp.json())["services"][0]["frozen"]["silences"] == ["good"]
