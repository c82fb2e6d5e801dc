"""Orchestration: per service, read the swarm, call ``policy.decide``, apply, record.

One service at a time (a lock per configured service), so duplicated notifications arriving
together are decided one after the other, the second seeing the first one's cooldown.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from . import policy
from .asyncswarm import AsyncSwarm
from .config import Config, ServicePolicy
from .domain import (
    Ignored,
    Outcome,
    Reason,
    ScaleRequest,
    ServiceNotFound,
    ServiceSnapshot,
    SwarmError,
    UpdateConflict,
)
from .metrics import OTHER_SERVICE, Metrics
from .models import WebhookPayload
from .state import Record, encode_time, record_of

log = logging.getLogger("receiver.decisions")


@dataclass(frozen=True)
class Result:
    decisions: list[Outcome]
    ignored: list[Ignored]

    @property
    def retry(self) -> bool:
        """Some service met a transient Docker failure: the sender should try again."""
        return any(d.reason is Reason.DOCKER_ERROR for d in self.decisions)

    def as_dict(self) -> dict[str, object]:
        return {"decisions": [d.as_dict() for d in self.decisions], "ignored": [i.as_dict() for i in self.ignored]}


class Scaler:
    def __init__(self, config: Config, swarm: AsyncSwarm, metrics: Metrics, clock: Callable[[], float]):
        self.config = config
        self.swarm = swarm
        self.metrics = metrics
        self.clock = clock
        self.last_decisions: dict[str, Outcome] = {}
        # Configured services only: a sender naming new services cannot grow this table.
        self.locks = {name: asyncio.Lock() for name in config.services}
        self._background: set[asyncio.Task[None]] = set()

    async def handle(self, payload: WebhookPayload) -> Result:
        for alert in payload.alerts:
            self.metrics.alerts_received.labels(alert.status).inc()
        requests, ignored = policy.requests_from_alerts(payload.alerts)
        for item in ignored:
            self.metrics.alerts_ignored.labels(str(item.reason)).inc()
        decisions = [await self.scale(service, request) for service, request in requests.items()]
        return Result(decisions, ignored)

    async def scale(self, name: str, request: ScaleRequest) -> Outcome:
        """Decide and apply one service's request; every failure becomes this service's outcome."""
        service_policy = self.config.services.get(name)
        lock = self.locks.get(name)
        if service_policy is None or lock is None:
            return self._record(policy.decide(name, request, None, None, self.clock()))
        async with lock:
            try:
                return self._record(await self._scale(name, request, service_policy))
            except SwarmError as err:
                log.warning(json.dumps({"event": "docker_error", "service": name, "kind": err.kind, "error": str(err)}))
                return self._record(policy.failed(name, request, err, self.clock()))

    async def _scale(self, name: str, request: ScaleRequest, service_policy: ServicePolicy) -> Outcome:
        retries = self.config.docker.update_retries
        for attempt in range(retries + 1):
            snapshot = await self._read(name)
            if snapshot is not None:
                self.observe_replicas(snapshot)
            outcome = policy.decide(name, request, service_policy, snapshot, self.clock(), dry_run=self.config.dry_run)
            if outcome.apply is None or snapshot is None or outcome.target is None:
                return outcome
            try:
                await self.swarm.set_replicas(snapshot, outcome.target, outcome.apply)
            except UpdateConflict:
                if attempt == retries:
                    raise
                log.info(json.dumps({"event": "update_conflict", "service": name, "attempt": attempt + 1}))
                continue
            # The record is written after the answer: the scale itself is done and its labels
            # are on the service; if this write is lost, reconciling writes it from the labels.
            self._in_background(self._save_record(name, record_of(outcome.target, {**snapshot.labels, **outcome.apply})))
            return outcome
        raise AssertionError("unreachable")

    async def _read(self, name: str) -> ServiceSnapshot | None:
        try:
            return await self.swarm.inspect(name)
        except ServiceNotFound:
            return None

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for the work started after answering (record writes)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _save_record(self, name: str, record: Record) -> None:
        """Best effort: the scale is done either way, and reconciling writes a missed record."""
        try:
            await self.swarm.write_record(name, record.as_data(name, self.clock()))
        except SwarmError as err:
            log.warning(json.dumps({"event": "record_not_saved", "service": name, "error": str(err)}))

    async def reconcile(self) -> list[Outcome]:
        """Every configured service once; one service's failure is logged, counted and skipped."""
        outcomes = []
        for name, service_policy in self.config.services.items():
            try:
                outcome = await self.reconcile_one(name, service_policy)
            except Exception as err:  # noqa: BLE001 - a sweep must reach every service
                self.metrics.background_errors.labels("reconcile").inc()
                log.warning(json.dumps({"event": "reconcile_failed", "service": name,
                                        "error": f"{type(err).__name__}: {err}"}))
                continue
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    async def reconcile_one(self, name: str, service_policy: ServicePolicy) -> Outcome | None:
        """Restore what a redeploy undid, or bring the record up to date, for one service."""
        async with self.locks[name]:
            snapshot = await self.swarm.inspect(name)
            data = await self.swarm.read_record(name)
            record = None if data is None else Record.from_data(data)
            outcome, to_save = policy.repair(name, snapshot, record, service_policy, self.clock(),
                                             dry_run=self.config.dry_run)
            if to_save is not None and not self.config.dry_run:
                await self.swarm.write_record(name, to_save.as_data(name, self.clock()))
            if outcome is None:
                return None
            if outcome.apply is not None and outcome.target is not None:
                await self.swarm.set_replicas(snapshot, outcome.target, outcome.apply)
            return self._record(outcome)

    def observe_replicas(self, snapshot: ServiceSnapshot) -> None:
        self.metrics.replicas.labels(snapshot.name).set(snapshot.replicas)
        self.metrics.running_replicas.labels(snapshot.name).set(snapshot.running)

    def _record(self, outcome: Outcome) -> Outcome:
        configured = outcome.service in self.config.services
        label = outcome.service if configured else OTHER_SERVICE
        self.metrics.decisions.labels(label, str(outcome.direction), str(outcome.reason)).inc()
        if outcome.applied:
            self.metrics.scale_events.labels(label, str(outcome.direction)).inc()
            self.metrics.last_scale.labels(label, str(outcome.direction)).set(outcome.at)
            self.metrics.replicas.labels(label).set(outcome.target or 0)
        if configured:
            self.last_decisions[outcome.service] = outcome
        log.info(json.dumps({"event": "decision", "at": encode_time(outcome.at), "dry_run": self.config.dry_run,
                             **outcome.as_dict()}))
        return outcome
