"""Orchestration: per service, read the swarm, call ``policy.decide``, apply, record.

One service at a time (a lock per configured service), so duplicated notifications arriving
together are decided one after the other, the second seeing the first one's cooldown.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from . import policy
from .asyncswarm import AsyncSwarm
from .config import Config, ServicePolicy
from .domain import (
    Direction,
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
from .schedule import effective_policy
from .state import (
    Record,
    encode_time,
    future_labels_as_first_seen,
    has_state_labels,
    is_paused,
    record_of,
    running_as_first_seen,
    unconverged_since,
)

log = logging.getLogger("receiver.decisions")


@dataclass
class _Held:
    """Background work started while a request is being answered: held until the answer is sent."""

    work: list[Coroutine[Any, Any, None]] = field(default_factory=list)
    open: bool = True


_ANSWERING: ContextVar[_Held | None] = ContextVar("answering", default=None)


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
        self._future: dict[str, dict[str, float]] = {}  # service -> future label value -> first seen
        self._unconverged: dict[str, float] = {}  # service -> since when it has been short (state.unconverged_since)
        self._running_seen: dict[str, tuple[str, float] | None] = {}  # service -> newest running task, first seen
        self._no_record: dict[str, int] = {}  # service -> the version at which it was found to have no record
        self._dry_repairs: dict[str, tuple[int | None, int | None]] = {}  # service -> last would-restore reported
        self._dry_minimums: dict[str, tuple[int | None, int | None]] = {}  # service -> last would-raise reported

    async def handle(self, payload: WebhookPayload) -> Result:
        for alert in payload.alerts:
            self.metrics.alerts_received.labels(alert.status).inc()
        requests, ignored = policy.requests_from_alerts(payload.alerts)
        for item in ignored:
            self.metrics.alerts_ignored.labels(str(item.reason)).inc()
        decisions: list[Outcome] = []
        for service, request in requests.items():
            if decisions:  # a notification naming thousands of services does not hold the loop
                await asyncio.sleep(0)
            decisions.append(await self.scale(service, request))
        return Result(decisions, ignored)

    async def wake(self, name: str, frozen: dict[str, object] | None = None) -> Outcome:
        """0 -> 1 for a client's request held while ``name`` has no replica (receiver/wake.py)."""
        return await self.scale(name, ScaleRequest(Direction.UP, wake=True), frozen=frozen)

    async def scale(self, name: str, request: ScaleRequest, *, frozen: dict[str, object] | None = None) -> Outcome:
        """Decide and apply one service's request; every failure becomes this service's outcome."""
        service_policy = self.config.services.get(name)
        lock = self.locks.get(name)
        if service_policy is None or lock is None:
            return self._record(policy.decide(name, request, None, None, self.clock()))
        async with lock:
            try:
                return self._record(await self._scale(name, request, service_policy, frozen))
            except SwarmError as err:
                log.warning(json.dumps({"event": "docker_error", "service": name, "kind": err.kind, "error": str(err)}))
                return self._record(policy.failed(name, request, err, self.clock()))

    async def _scale(self, name: str, request: ScaleRequest, service_policy: ServicePolicy,
                     frozen: dict[str, object] | None, decide: Callable[..., Outcome] = policy.decide) -> Outcome:
        retries = self.config.docker.update_retries
        for attempt in range(retries + 1):
            snapshot, record = await self._read(name)
            effective = effective_policy(service_policy, self.clock())  # its minimum as scheduled now
            outcome = decide(name, request, effective, snapshot, self.clock(),
                             dry_run=self.config.dry_run, record=record, frozen=frozen)
            if outcome.apply is None or snapshot is None or outcome.target is None:
                return outcome
            try:
                await self.swarm.set_replicas(snapshot, outcome.target, outcome.apply)
            except (UpdateConflict, ServiceNotFound) as err:
                # Changed (or removed, or re-created) since the read, maybe a stale copy: read again.
                if attempt == retries:
                    raise
                log.info(json.dumps({"event": "update_conflict", "service": name, "kind": err.kind, "attempt": attempt + 1}))
                continue
            # The record is written after the answer: the scale itself is done and its labels
            # are on the service; if this write is lost, reconciling writes it from the labels.
            written = record_of(snapshot, outcome.target, {**snapshot.labels, **outcome.apply})
            self._in_background(self._save_record(name, written))
            return outcome
        raise AssertionError("unreachable")

    async def _read(self, name: str) -> tuple[ServiceSnapshot | None, Record | None]:
        """The service as the decision sees it, and its record when its state labels are gone."""
        try:
            snapshot = self.observe(await self.swarm.inspect(name))
        except ServiceNotFound:
            return None, None
        if has_state_labels(snapshot) or is_paused(snapshot.labels) or self._no_record.get(name) == snapshot.version:
            return snapshot, None
        data = await self.swarm.read_record(name)  # a redeploy may have dropped our labels
        if data is None:
            # Until this service version changes (a redeploy, any write), there is still none.
            self._no_record[name] = snapshot.version
            return snapshot, None
        return snapshot, _parse_record(name, data)

    def observe(self, snapshot: ServiceSnapshot) -> ServiceSnapshot:
        """Counts the replicas read; state labels in the future count from when first seen; and the
        time the service has been short is carried across reads."""
        before = self._future.get(snapshot.name, {})
        seen, self._future[snapshot.name] = future_labels_as_first_seen(snapshot, before, self.clock())
        if set(self._future[snapshot.name]) - set(before):  # logged once, when first seen
            log.warning(json.dumps({"event": "state_label_in_future", "service": snapshot.name,
                                    "labels": {k: v for k, v in snapshot.labels.items() if seen.labels.get(k) != v},
                                    "counted_from": {k: v for k, v in seen.labels.items() if snapshot.labels.get(k) != v}}))
        return self._converging(seen)

    def _converging(self, snapshot: ServiceSnapshot) -> ServiceSnapshot:
        self.metrics.replicas.labels(snapshot.name).set(snapshot.replicas)
        self.metrics.running_replicas.labels(snapshot.name).set(snapshot.running)
        seen, self._running_seen[snapshot.name] = running_as_first_seen(snapshot, self._running_seen.get(snapshot.name), self.clock())
        since = unconverged_since(self._unconverged.get(snapshot.name), seen, self.clock())
        if since is None:
            self._unconverged.pop(snapshot.name, None)
            return snapshot if snapshot.pending_since is None else replace(snapshot, pending_since=None)
        self._unconverged[snapshot.name] = since
        return replace(snapshot, pending_since=since)

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Inside it (a request's handler, until its answer is written), work after a scale (the
        record write) waits, then starts when it is left, however it is left; a decision's log line
        and counts wait for the handler's next pause (``_record``): the answer's time is not shared
        with writing the log, nor with Docker calls and their parsing, that need not come before it."""
        held = _Held()
        token = _ANSWERING.set(held)
        try:
            yield
        finally:
            _ANSWERING.reset(token)
            held.open = False
            for work in held.work:
                self._start(work)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        held = _ANSWERING.get()
        if held is not None and held.open:  # (a task made inside it and outliving it starts its own)
            held.work.append(work)
        else:
            self._start(work)

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
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
            await self.swarm.write_record(name, record.as_data(name, self.clock()), record.version)
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
        """Restore what a redeploy undid, or bring the record up to date, for one service; the
        records of a service that is gone go with it."""
        async with self.locks[name]:
            try:
                snapshot = self.observe(await self.swarm.inspect(name))
            except ServiceNotFound:
                if await self.swarm.remove_records(name):
                    log.info(json.dumps({"event": "records_removed", "service": name, "why": "service gone"}))
                return None
            data = await self.swarm.read_record(name)
            record = None if data is None else _parse_record(name, data)
            outcome, to_save = policy.repair(name, snapshot, record, service_policy, self.clock(),
                                             dry_run=self.config.dry_run)
            if to_save is not None and not self.config.dry_run:
                await self.swarm.write_record(name, to_save.as_data(name, self.clock()), to_save.version)
            if outcome is None:
                self._dry_repairs.pop(name, None)
                return None
            if outcome.dry_run:  # reported once, not at every sweep
                if self._dry_repairs.get(name) == (outcome.current, outcome.target):
                    return None
                self._dry_repairs[name] = (outcome.current, outcome.target)
            if outcome.apply is not None and outcome.target is not None:
                await self.swarm.set_replicas(snapshot, outcome.target, outcome.apply)
            return self._record(outcome)

    async def raise_to_minimum(self, name: str, frozen: dict[str, object] | None = None) -> Outcome | None:
        """``name`` raised to its effective minimum when below it (``policy.to_minimum``), applied and
        recorded like a scale-up; None when there is nothing to report (at or above it, refused,
        frozen, or a dry run's would-raise already reported)."""
        async with self.locks[name]:
            outcome = await self._scale(name, ScaleRequest(Direction.UP), self.config.services[name], frozen,
                                        policy.to_minimum)
        if not outcome.reason.changes:
            self._dry_minimums.pop(name, None)
            return None
        if outcome.dry_run:
            if self._dry_minimums.get(name) == (outcome.current, outcome.target):
                return None
            self._dry_minimums[name] = (outcome.current, outcome.target)
        return self._record(outcome)

    def _record(self, outcome: Outcome) -> Outcome:
        if outcome.service in self.config.services:
            self.last_decisions[outcome.service] = outcome
        held = _ANSWERING.get()
        if held is not None and held.open:
            # Answering: at the handler's next pause, which is once the answer is written (or
            # earlier, when writing it must wait for the client, or between two services). Still
            # before anything else that runs on the loop: the next holder of this service's lock
            # (woken after this is queued), another request, a wake.
            asyncio.get_running_loop().call_soon(self._report, outcome)
        else:
            self._report(outcome)
        return outcome

    def _report(self, outcome: Outcome) -> None:
        """A decision's counts and log line."""
        label = outcome.service if outcome.service in self.config.services else OTHER_SERVICE
        self.metrics.decisions.labels(label, str(outcome.direction), str(outcome.reason)).inc()
        if outcome.applied:
            self.metrics.scale_events.labels(label, str(outcome.direction)).inc()
            self.metrics.last_scale.labels(label, str(outcome.direction)).set(outcome.at)
            self.metrics.replicas.labels(label).set(outcome.target or 0)
        log.info(json.dumps({"event": "decision", "at": encode_time(outcome.at), **outcome.as_dict()}))


def _parse_record(name: str, data: dict[str, Any]) -> Record | None:
    """A stored record, or None (logged) when it cannot be read: it is then not restored."""
    try:
        return Record.from_data(data)
    except ValueError as err:
        log.warning(json.dumps({"event": "record_unreadable", "service": name, "error": str(err)}))
        return None
