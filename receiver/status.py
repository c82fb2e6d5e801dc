"""What ``/status`` reports per configured service, and a short-lived cache that keeps
unauthenticated endpoints from costing more than one read of the swarm per interval (a failed
read is shared like an answer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from .config import Config, ServicePolicy
from .domain import Direction, Outcome, ServiceSnapshot, SwarmError
from .policy import cooldown_remaining
from .scaler import Scaler
from .schedule import applying, effective_minimum
from .silences import freeze_of
from .state import InvalidStateLabel, is_paused, service_state
from .timeutil import format_rfc3339

T = TypeVar("T")


class Shared(Generic[T]):
    """One computation at a time, its answer (or its error) shared for ``ttl`` seconds: concurrent
    and repeated callers within ``ttl`` get the same answer and cost nothing more."""

    def __init__(self, compute: Callable[[], Awaitable[T]], ttl: float, clock: Callable[[], float] = time.monotonic):
        self._compute = compute
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._value: tuple[float, T | BaseException] | None = None

    async def get(self) -> T:
        async with self._lock:
            if self._value is None or self._clock() - self._value[0] >= self._ttl:
                try:
                    self._value = (self._clock(), await self._compute())
                except Exception as err:  # noqa: BLE001 - shared like an answer, raised to every caller
                    self._value = (self._clock(), err)
            value = self._value[1]
        if isinstance(value, BaseException):
            raise value
        return value


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else format_rfc3339(epoch)


def _last(outcome: Outcome | None) -> dict[str, object] | None:
    return None if outcome is None else {**outcome.as_dict(), "at": _iso(outcome.at)}


def _windows(policy: ServicePolicy, now: float) -> list[dict[str, object]]:
    """The scheduled windows that apply now: active, or starting within their lead."""
    return [{"index": a.index, "name": a.window.name, "min_replicas": a.window.min_replicas,
             "active": a.active(now), "starts_at": _iso(a.starts_at)} for a in applying(policy.schedules, now)]


async def read_services(scaler: Scaler) -> dict[str, ServiceSnapshot | SwarmError]:
    """Every configured service as the swarm has it now, or the error reading it."""
    read: dict[str, ServiceSnapshot | SwarmError] = {}
    for name in scaler.config.services:
        try:
            read[name] = scaler.observe(await scaler.swarm.inspect(name))
        except SwarmError as err:
            read[name] = err
    return read


def report(scaler: Scaler, read: dict[str, ServiceSnapshot | SwarmError],
           silences: list[dict[str, Any]] | None) -> dict[str, object]:
    """The /status answer: one entry per configured service."""
    config: Config = scaler.config
    entries = []
    now = scaler.clock()
    for name, policy in config.services.items():
        entry: dict[str, object] = {"service": name, "min_replicas": policy.min_replicas,
                                    "max_replicas": policy.max_replicas,
                                    "effective_min_replicas": effective_minimum(policy, now)}
        if policy.schedules:
            entry["schedules"] = _windows(policy, now)
        snapshot = read.get(name)
        try:
            if not isinstance(snapshot, ServiceSnapshot):
                raise snapshot or SwarmError("not read")
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
        if silences is not None:
            freeze = freeze_of(silences, name, config.alertmanager.scaling_alerts)
            entry["frozen"] = None if freeze is None else freeze.as_dict()
        entry["last_decision"] = _last(scaler.last_decisions.get(name))
        entries.append(entry)
    return {"dry_run": config.dry_run, "services": entries}
