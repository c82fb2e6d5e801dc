"""Background jobs of the receiver: reading Alertmanager's silences, reconciling services and
raising services to their scheduled minimums.

Each runs every ``interval`` and survives any error: it logs it, counts it in
``autoscaler_background_errors_total{job}`` and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from .alertmanager import Alertmanager
from .config import ScalingAlerts
from .domain import Direction
from .metrics import Metrics
from .scaler import Scaler
from .schedule import effective_minimum
from .silences import freeze_of

log = logging.getLogger("receiver.jobs")

Job = Callable[[web.Application], AsyncIterator[None]]


async def _every(name: str, interval: float, work: Callable[[], Awaitable[None]], metrics: Metrics) -> None:
    while True:
        try:
            await work()
        except Exception as err:  # a background job must outlive any one failure
            metrics.background_errors.labels(name).inc()
            log.error(json.dumps({"event": "background_error", "job": name, "error": f"{type(err).__name__}: {err}"}))
        await asyncio.sleep(interval)


def periodic(name: str, interval: float, work: Callable[[], Awaitable[None]], metrics: Metrics) -> Job:
    """A cleanup context running ``work`` every ``interval`` for the app's lifetime."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_every(name, interval, work, metrics), name=name)
        yield
        while not task.done():  # again: Python 3.11's wait_for swallows a cancel that races its result
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


class Silences:
    """The active silences as last read from Alertmanager (None: not read yet, or not configured)."""

    def __init__(self, services: list[str], alerts: ScalingAlerts, metrics: Metrics):
        self.services = services
        self.alerts = alerts
        self.metrics = metrics
        self.current: list[dict[str, Any]] | None = None
        self._poll: Callable[[], Awaitable[None]] | None = None  # set while the poller runs
        self._url: str | None = None  # Alertmanager's, once the poller is set up

    @property
    def known(self) -> bool:
        """The silences were read at least once, or there is no Alertmanager to read them from."""
        return self._url is None or self.current is not None

    async def refresh(self) -> None:
        """Read the silences now (a wake must not wait for the next poll to see a freeze end or
        begin); on failure the last reading stands (the failure is counted as a poll's)."""
        if self._poll is not None:
            with contextlib.suppress(Exception):
                await self._poll()

    def update(self, silences: list[dict[str, Any]]) -> None:
        """Keep ``silences`` only once every service's freeze is judged: a silence that cannot be
        judged (a pattern RE2 refuses) fails the poll and leaves the last good reading in /status."""
        frozen = {name: freeze_of(silences, name, self.alerts) is not None for name in self.services}
        self.current = silences
        for name, is_frozen in frozen.items():
            self.metrics.frozen.labels(name).set(1 if is_frozen else 0)

    def holding(self, service: str, direction: str) -> dict[str, object] | None:
        """The freeze that mutes ``service``'s scaling alerts in ``direction``, as last read (None:
        none, or Alertmanager not read yet: a poll that never succeeded freezes nothing)."""
        if self.current is None:
            return None
        freeze = freeze_of(self.current, service, self.alerts)
        return freeze.as_dict() if freeze is not None and direction in freeze.directions else None

    def job(self, url: str, interval: float, timeout: float) -> Job:
        """Poll ``url`` every ``interval``, so /status and the metrics show freezes."""
        self._url = url

        async def ctx(app: web.Application) -> AsyncIterator[None]:
            async with aiohttp.ClientSession() as session:
                client = Alertmanager(session, url, timeout)

                async def poll() -> None:
                    try:
                        silences = await client.silences()
                    except Exception:
                        self.metrics.alertmanager_polls.labels("error").inc()
                        raise
                    self.update(silences)
                    self.metrics.alertmanager_polls.labels("ok").inc()

                self._poll = poll
                async for _ in periodic("silences", interval, poll, self.metrics)(app):
                    yield
                self._poll = None

        return ctx


def reconciling(scaler: Scaler, interval: float) -> Job:
    """Every ``interval``: each configured service restored where a redeploy undid it, records kept."""

    async def reconcile() -> None:
        await scaler.reconcile()

    return periodic("reconcile", interval, reconcile, scaler.metrics)


def scheduling(scaler: Scaler, silences: Silences, interval: float) -> Job:
    """Every ``interval``: every service's effective minimum in ``autoscaler_min_replicas``, and each
    service with ``schedules`` below it raised to it (``Scaler.raise_to_minimum``), unless a silence
    freezes its scale-up (reason ``frozen``, not reported). Where silences are polled, none is
    raised before the first poll has answered (``Silences.known``: a freeze may be in place)."""

    async def sweep() -> None:
        for name, service_policy in scaler.config.services.items():
            scaler.metrics.min_replicas.labels(name).set(effective_minimum(service_policy, scaler.clock()))
            if not service_policy.schedules:
                continue
            if not silences.known:
                continue
            try:
                await scaler.raise_to_minimum(name, silences.holding(name, str(Direction.UP)))
            except Exception as err:  # one service's failure does not stop the sweep
                scaler.metrics.background_errors.labels("schedule").inc()
                log.warning(json.dumps({"event": "schedule_failed", "service": name,
                                        "error": f"{type(err).__name__}: {err}"}))

    return periodic("schedule", interval, sweep, scaler.metrics)
