"""Orchestration: alerts -> requests per service -> read state -> decide -> apply -> record.

One service at a time (a lock per service), so duplicated notifications arriving together are
decided one after the other, the second seeing the first one's cooldown.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .config import Config, ServicePolicy
from .metrics import OTHER_SERVICE, Metrics
from .models import LABEL_SCALE, LABEL_SERVICE, Alert, WebhookPayload
from .policy import Decision, Direction, Reason, ScaleRequest, cooldown_remaining, decide, merge_requests
from .state import PAUSE_LABEL, InvalidStateLabel, Record, is_paused, Repair, encode_time, plan_repair, record_of, service_state, state_labels
from .silences import freeze_of
from .swarm import AsyncSwarm, ServiceNotFound, ServiceSnapshot, SwarmError, UpdateConflict

log = logging.getLogger("receiver.decisions")


@dataclass(frozen=True)
class Outcome:
    """One decision for one service, as answered, logged and counted."""

    service: str
    direction: Direction
    reason: Reason
    current: int | None = None
    target: int | None = None
    at: float = 0.0
    details: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        answer: dict[str, object] = {
            "service": self.service,
            "direction": str(self.direction),
            "from": self.current,
            "to": self.target,
            "reason": str(self.reason),
        }
        if self.details:
            answer["details"] = self.details
        return answer


@dataclass(frozen=True)
class Ignored:
    alertname: str
    fingerprint: str
    reason: Reason

    def as_dict(self) -> dict[str, str]:
        return {"alertname": self.alertname, "fingerprint": self.fingerprint, "reason": str(self.reason)}


@dataclass(frozen=True)
class Result:
    decisions: list[Outcome]
    ignored: list[Ignored]

    def as_dict(self) -> dict[str, object]:
        return {"decisions": [d.as_dict() for d in self.decisions], "ignored": [i.as_dict() for i in self.ignored]}


def requests_from_alerts(alerts: list[Alert]) -> tuple[dict[str, ScaleRequest], list[Ignored]]:
    """Pure: the firing alerts' requests merged per service, and the alerts that ask for nothing."""
    asked: dict[str, list[ScaleRequest]] = {}
    ignored: list[Ignored] = []
    for alert in alerts:
        service, scale = alert.labels.get(LABEL_SERVICE), alert.labels.get(LABEL_SCALE)
        reason = None
        if alert.status != "firing":
            reason = Reason.RESOLVED
        elif not service or not scale:
            reason = Reason.MISSING_LABELS
        elif scale not in (Direction.UP, Direction.DOWN):
            reason = Reason.INVALID_SCALE_LABEL
        if reason is not None:
            ignored.append(Ignored(alert.name, alert.fingerprint, reason))
            continue
        desired = alert.desired_replicas
        request = ScaleRequest(Direction(scale), targets=() if desired is None else (desired,), step=desired is None)
        asked.setdefault(service, []).append(request)
    return {service: merge_requests(reqs) for service, reqs in asked.items()}, ignored


class Scaler:
    def __init__(self, config: Config, swarm: AsyncSwarm, metrics: Metrics, clock: Callable[[], float]):
        self.config = config
        self.swarm = swarm
        self.metrics = metrics
        self.clock = clock
        self.last_decisions: dict[str, Outcome] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.silences: list[dict[str, object]] | None = None  # None: not read (yet, or not configured)
        self._background: set[asyncio.Task[None]] = set()

    def set_silences(self, silences: list[dict[str, object]]) -> None:
        """The active silences as last read from Alertmanager; updates the frozen gauge."""
        self.silences = silences
        for name in self.config.services:
            self.metrics.frozen.labels(name).set(1 if freeze_of(silences, name) else 0)

    async def handle(self, payload: WebhookPayload) -> Result:
        for alert in payload.alerts:
            self.metrics.alerts_received.labels(alert.status).inc()
        requests, ignored = requests_from_alerts(payload.alerts)
        for item in ignored:
            self.metrics.alerts_ignored.labels(str(item.reason)).inc()
        decisions = []
        for service, request in requests.items():
            async with self._locks.setdefault(service, asyncio.Lock()):
                decisions.append(await self._scale(service, request))
        return Result(decisions, ignored)

    async def _scale(self, name: str, request: ScaleRequest) -> Outcome:
        policy = self.config.services.get(name)
        if policy is None:
            return self._record(Outcome(name, request.direction, Reason.UNCONFIGURED_SERVICE, at=self.clock()))
        retries = self.config.docker.update_retries
        for attempt in range(retries + 1):
            try:
                snapshot = await self.swarm.inspect(name)
            except ServiceNotFound:
                return self._record(Outcome(name, request.direction, Reason.SERVICE_NOT_FOUND, at=self.clock()))
            outcome, labels = self._decide(snapshot, request, policy)
            if labels is None:
                return self._record(outcome)
            try:
                await self.swarm.set_replicas(snapshot, outcome.target, labels)
            except UpdateConflict:
                if attempt == retries:
                    raise
                log.info(json.dumps({"event": "update_conflict", "service": name, "attempt": attempt + 1}))
                continue
            # The record is written after the answer: the scale itself is done and its labels
            # are on the service; if this write is lost, reconciling writes it from the labels.
            self._in_background(self._save_record(name, record_of(outcome.target, {**snapshot.labels, **labels})))
            return self._record(outcome)
        raise AssertionError("unreachable")

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
        """Check every configured service once: restore what a redeploy undid, keep records current."""
        outcomes = []
        for name, policy in self.config.services.items():
            async with self._locks.setdefault(name, asyncio.Lock()):
                try:
                    outcome = await self._reconcile_one(name, policy)
                except (SwarmError, ValueError) as err:
                    log.warning(json.dumps({"event": "reconcile_failed", "service": name, "error": str(err)}))
                    continue
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    async def _reconcile_one(self, name: str, policy: ServicePolicy) -> Outcome | None:
        snapshot = await self.swarm.inspect(name)
        if snapshot.mode != "replicated":
            return None
        data = await self.swarm.read_record(name)
        record = None if data is None else Record.from_data(data)
        action, wanted = plan_repair(snapshot, record, policy)
        if action is Repair.SAVE and wanted is not None:
            await self.swarm.write_record(name, wanted.as_data(name, self.clock()))
        if action is not Repair.RESTORE or wanted is None:
            return None
        direction = Direction.UP if wanted.replicas >= snapshot.replicas else Direction.DOWN
        outcome = Outcome(name, direction, Reason.RESTORED, snapshot.replicas, wanted.replicas, self.clock())
        if self.config.dry_run:
            return self._record(Outcome(name, direction, Reason.DRY_RUN, snapshot.replicas, wanted.replicas,
                                        outcome.at, {"would": str(Reason.RESTORED)}))
        await self.swarm.set_replicas(snapshot, wanted.replicas, wanted.labels)
        return self._record(outcome)

    def _decide(
        self, snapshot: ServiceSnapshot, request: ScaleRequest, policy: ServicePolicy
    ) -> tuple[Outcome, dict[str, str] | None]:
        """The outcome, and the state labels to write with it when it changes the replicas."""
        now = self.clock()
        name, direction = snapshot.name, request.direction
        self._observe_replicas(snapshot)
        if snapshot.mode != "replicated":
            return Outcome(name, direction, Reason.GLOBAL_MODE, at=now, details={"mode": snapshot.mode}), None
        if is_paused(snapshot.labels):
            return Outcome(name, direction, Reason.PAUSED, snapshot.replicas, snapshot.replicas, now, {"label": PAUSE_LABEL}), None
        try:
            state = service_state(snapshot)
        except InvalidStateLabel as err:
            return Outcome(name, direction, Reason.INVALID_STATE_LABEL, at=now, details={"error": str(err)}), None
        decision = decide(request, state, policy, now)
        outcome = _outcome(name, decision, now)
        if not decision.reason.changes:
            return outcome, None
        if self.config.dry_run:
            return _outcome(name, decision, now, Reason.DRY_RUN), None
        return outcome, state_labels(direction, now)

    def _observe_replicas(self, snapshot: ServiceSnapshot) -> None:
        self.metrics.replicas.labels(snapshot.name).set(snapshot.replicas)
        self.metrics.running_replicas.labels(snapshot.name).set(snapshot.running)

    def _record(self, outcome: Outcome) -> Outcome:
        configured = outcome.service in self.config.services
        label = outcome.service if configured else OTHER_SERVICE
        self.metrics.decisions.labels(label, str(outcome.direction), str(outcome.reason)).inc()
        if outcome.reason.changes:
            self.metrics.scale_events.labels(label, str(outcome.direction)).inc()
            self.metrics.last_scale.labels(label, str(outcome.direction)).set(outcome.at)
            self.metrics.replicas.labels(label).set(outcome.target or 0)
        if configured:
            self.last_decisions[outcome.service] = outcome
        log.info(json.dumps({"event": "decision", "at": encode_time(outcome.at), "dry_run": self.config.dry_run, **outcome.as_dict()}))
        return outcome

    async def status(self) -> list[dict[str, object]]:
        """One entry per configured service, read from the swarm now."""
        entries = []
        now = self.clock()
        for name, policy in self.config.services.items():
            entry: dict[str, object] = {
                "service": name,
                "min_replicas": policy.min_replicas,
                "max_replicas": policy.max_replicas,
            }
            try:
                snapshot = await self.swarm.inspect(name)
                self._observe_replicas(snapshot)
                state = service_state(snapshot)
            except (InvalidStateLabel, SwarmError) as err:  # reported per service
                entry["error"] = f"{type(err).__name__}: {err}"
            else:
                entry.update(
                    mode=snapshot.mode,
                    paused=is_paused(snapshot.labels),
                    replicas_desired=snapshot.replicas,
                    replicas_running=snapshot.running,
                    last_scale_up=_iso(state.last_scale_up),
                    last_scale_down=_iso(state.last_scale_down),
                    cooldown_remaining_up=round(cooldown_remaining(Direction.UP, state, policy, now), 3),
                    cooldown_remaining_down=round(cooldown_remaining(Direction.DOWN, state, policy, now), 3),
                )
            if self.silences is not None:
                freeze = freeze_of(self.silences, name)
                entry["frozen"] = None if freeze is None else freeze.as_dict()
            last = self.last_decisions.get(name)
            entry["last_decision"] = None if last is None else {**last.as_dict(), "at": _iso(last.at)}
            entries.append(entry)
        return entries


def _outcome(name: str, decision: Decision, now: float, reason: Reason | None = None) -> Outcome:
    details = dict(decision.details)
    if decision.cooldown_remaining > 0:
        details["cooldown_remaining"] = round(decision.cooldown_remaining, 3)
    return Outcome(
        service=name,
        direction=decision.direction,
        reason=reason or decision.reason,
        current=decision.current,
        target=decision.target,
        at=now,
        details=details,
    )


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else encode_time(epoch)
