"""Background jobs outlive their failures: each error is logged and counted, and the job goes on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from receiver.jobs import reconciling
from receiver.metrics import Metrics

from .conftest import sample


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
