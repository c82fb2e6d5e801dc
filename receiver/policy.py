"""The decision: pure functions from what the alerts ask and what the swarm says to an ``Outcome``.

No I/O and no clock: ``now`` is passed in. Every reason code is set here, refusals, dry run and
restores included; the same code is answered over HTTP, logged and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from .config import ServicePolicy
from .domain import (
    Direction,
    Ignored,
    Outcome,
    Reason,
    ScaleRequest,
    ServiceSnapshot,
    ServiceState,
    SwarmError,
)
from .models import LABEL_SCALE, LABEL_SERVICE, Alert
from .state import (
    PAUSE_LABEL,
    InvalidStateLabel,
    Record,
    Repair,
    clock_ahead,
    is_paused,
    plan_repair,
    restorable,
    service_state,
    state_labels,
)


def requests_from_alerts(alerts: Iterable[Alert]) -> tuple[dict[str, ScaleRequest], list[Ignored]]:
    """The firing alerts' requests merged per service, and the alerts that ask for nothing."""
    asked: dict[str, list[ScaleRequest]] = {}
    ignored: list[Ignored] = []
    for alert in alerts:
        service, scale = alert.labels.get(LABEL_SERVICE), alert.labels.get(LABEL_SCALE)
        if alert.status != "firing":
            reason = Reason.RESOLVED
        elif not service or not scale:
            reason = Reason.MISSING_LABELS
        elif scale not in (Direction.UP, Direction.DOWN):
            reason = Reason.INVALID_SCALE_LABEL
        else:
            desired = alert.desired_replicas
            targets = () if desired is None else (desired,)
            asked.setdefault(service, []).append(ScaleRequest(Direction(scale), targets, step=desired is None))
            continue
        ignored.append(Ignored(alert.name, alert.fingerprint, reason))
    return {service: merge_requests(reqs) for service, reqs in asked.items()}, ignored


def merge_requests(requests: list[ScaleRequest]) -> ScaleRequest:
    """Several alerts for one service make one request: up wins over down."""
    if not requests:
        raise ValueError("merge_requests needs at least one request")
    direction = Direction.UP if any(r.direction is Direction.UP for r in requests) else Direction.DOWN
    chosen = [r for r in requests if r.direction is direction]
    return ScaleRequest(
        direction=direction,
        targets=tuple(sorted({t for r in chosen for t in r.targets})),
        step=any(r.step for r in chosen),
    )


def cooldown_remaining(direction: Direction, state: ServiceState, policy: ServicePolicy, now: float) -> float:
    """Seconds until a move in ``direction`` is allowed again (0 when it is)."""
    if direction is Direction.UP:
        since, length = state.last_scale_up, policy.scale_up_cooldown
    else:
        since, length = state.last_change, policy.scale_down_cooldown
    if since is None:
        return 0.0
    # A time ahead of ours (a writer's clock ran ahead, a hand edit) counts as now: no state
    # label holds longer than its cooldown.
    return max(0.0, min(since, now) + length - now)


def _wanted(request: ScaleRequest, current: int, policy: ServicePolicy) -> int:
    up = request.direction is Direction.UP
    if not up and 0 in request.targets:
        return 0  # the idle rule's target: it wins a scale-down (a step never reaches 0)
    candidates = list(request.targets)
    if request.step or not candidates:
        down = current - policy.scale_down_step
        candidates.append(current + policy.scale_up_step if up else down if policy.min_replicas > 0 else max(down, 1))
    return max(candidates)


def _replicas(request: ScaleRequest, state: ServiceState, policy: ServicePolicy, now: float) -> tuple[int, Reason, dict[str, object]]:
    """Target, reason and details of a request on a scalable service's state."""
    lo, hi = policy.min_replicas, policy.max_replicas
    current = state.replicas
    up = request.direction is Direction.UP
    if up and current >= hi:
        return current, Reason.AT_MAX, {}
    if not up and current <= lo:
        return current, Reason.AT_MIN, {}
    if not up and current == 1 and 0 not in request.targets:
        # min_replicas 0: only an alert asking for desired_replicas 0 (the idle rule) goes to 0.
        return current, Reason.AT_MIN, {"to_zero": "only an alert with desired_replicas 0"}
    remaining = cooldown_remaining(request.direction, state, policy, now)
    if remaining > 0:
        return current, Reason.COOLDOWN, {"cooldown_remaining": round(remaining, 3)}
    if up and state.pending_since is not None:
        # Tasks that should run are starting (pulling, loading a model), or have only just started
        # after the service was short (a crash loop's task runs for a moment before it fails):
        # wait for them, up to convergence_wait.
        waited = now - state.pending_since
        if waited < policy.convergence_wait:
            details: dict[str, object] = {"running": state.running, "waited": round(waited, 3)}
            if state.running >= current:
                details["settling"] = True
            return current, Reason.NOT_CONVERGED, details
    wanted = _wanted(request, current, policy)
    target = policy.clamp(wanted)
    if (up and target <= current) or (not up and target >= current):
        return current, Reason.AT_TARGET, {"wanted": wanted}
    if target != wanted:
        return target, Reason.CLAMPED_TO_MAX if wanted > hi else Reason.CLAMPED_TO_MIN, {"wanted": wanted}
    return target, Reason.SCALED_UP if up else Reason.SCALED_DOWN, {}


def _woken(state: ServiceState, policy: ServicePolicy) -> tuple[int, Reason, dict[str, object]]:
    """A client waits for a service at 0 replicas: 0 -> 1 (or min_replicas), whatever the cooldowns
    (a person is waiting; the idle rule's `for` keeps the next scale to 0 away)."""
    if state.replicas > 0:
        return state.replicas, Reason.AT_TARGET, {"awake": True}
    return policy.clamp(1), Reason.WOKEN, {}


def decide(
    name: str,
    request: ScaleRequest,
    policy: ServicePolicy | None,
    snapshot: ServiceSnapshot | None,
    now: float,
    *,
    dry_run: bool = False,
    record: Record | None = None,
    frozen: dict[str, object] | None = None,
) -> Outcome:
    """The one decision for one service: what the alerts ask, on what the swarm says.

    ``policy`` None: the service is not configured; ``snapshot`` None: the swarm has no such
    service. ``record``: the service's record, read when its state labels are gone; a restorable
    one (``state.restorable``) is put back first and the request decided on the restored state.
    A decision that changes the replicas carries the labels to write with it (``apply``),
    unless ``dry_run``: then it keeps its reason and says it would have acted. ``frozen``: the
    silence that mutes the service's scaling alerts, for decisions no alert carries (a wake).
    """
    direction = request.direction

    def refused(reason: Reason, **details: object) -> Outcome:
        current = None if snapshot is None or reason is Reason.GLOBAL_MODE else snapshot.replicas
        return Outcome(name, direction, reason, current, current, now, details)

    if policy is None:
        return refused(Reason.UNCONFIGURED_SERVICE)
    if snapshot is None:
        return refused(Reason.SERVICE_NOT_FOUND)
    if request.wake and snapshot.replicas > 0:
        return refused(Reason.AT_TARGET, awake=True)  # awake already (the router has not seen it yet)
    held = not_scalable(snapshot)
    if held is not None:
        return refused(held[0], **held[1])
    if frozen is not None:
        return refused(Reason.FROZEN, **frozen)
    restore = restorable(snapshot, record)
    seen = snapshot if restore is None else replace(
        snapshot, replicas=policy.clamp(restore.replicas), labels={**snapshot.labels, **restore.labels})
    try:
        state = service_state(seen)
    except InvalidStateLabel as err:
        return refused(Reason.INVALID_STATE_LABEL, error=str(err))
    target, reason, details = _woken(state, policy) if request.wake else _replicas(request, state, policy, now)
    ahead = max(clock_ahead(state, now), snapshot.clock_ahead)
    if ahead > 0:
        details["clock_ahead"] = round(ahead, 3)
    labels = state_labels(direction, now) if reason.changes else {}
    if restore is not None:
        details["restored"] = seen.replicas
        against = (direction is Direction.UP and target < snapshot.replicas) or \
            (direction is Direction.DOWN and target > snapshot.replicas)
        if not reason.changes or against:
            # Only the restore: an up request never lowers the replicas, a down one never raises them.
            target, reason, labels = seen.replicas, Reason.RESTORED, {}
            direction = Direction.UP if target >= snapshot.replicas else Direction.DOWN
        labels = {**restore.labels, **labels}
    apply = labels if reason.changes and not dry_run else None
    return Outcome(name, direction, reason, snapshot.replicas, target, now, details, dry_run, apply)


def not_scalable(snapshot: ServiceSnapshot) -> tuple[Reason, dict[str, object]] | None:
    """Why a service must not be changed now, by a webhook or by reconcile alike; None when it may."""
    if snapshot.mode != "replicated":
        return Reason.GLOBAL_MODE, {"mode": snapshot.mode}
    if is_paused(snapshot.labels):
        return Reason.PAUSED, {"label": PAUSE_LABEL}
    if snapshot.updating:
        # A change now would become the spec `docker service rollback` returns to (see README).
        return Reason.UPDATE_IN_PROGRESS, {}
    return None


def failed(name: str, request: ScaleRequest, err: SwarmError, now: float) -> Outcome:
    """The outcome of a Docker call that failed: transient (retried through a 503) or refused for good."""
    reason = Reason.DOCKER_ERROR if err.transient else Reason.DOCKER_REFUSED
    details: dict[str, object] = {"kind": err.kind}
    if err.status is not None:
        details["status"] = err.status
    return Outcome(name, request.direction, reason, at=now, details=details)


def repair(
    name: str, snapshot: ServiceSnapshot, record: Record | None, policy: ServicePolicy, now: float, *, dry_run: bool = False
) -> tuple[Outcome | None, Record | None]:
    """Reconciling one service: the restore to apply (an outcome ``restored``) or the record to save.
    Nothing while the service must not be changed (``not_scalable``)."""
    if not_scalable(snapshot) is not None:
        return None, None
    action, wanted = plan_repair(snapshot, record, policy)
    if action is Repair.SAVE:
        return None, wanted
    if action is not Repair.RESTORE or wanted is None:
        return None, None
    direction = Direction.UP if wanted.replicas >= snapshot.replicas else Direction.DOWN
    apply = None if dry_run else wanted.labels
    return Outcome(name, direction, Reason.RESTORED, snapshot.replicas, wanted.replicas, now,
                   {"restored": wanted.replicas}, dry_run, apply), None


def to_minimum(
    name: str,
    request: ScaleRequest,
    policy: ServicePolicy | None,
    snapshot: ServiceSnapshot | None,
    now: float,
    *,
    dry_run: bool = False,
    record: Record | None = None,
    frozen: dict[str, object] | None = None,
) -> Outcome:
    """A service below its minimum raised to it: ``decide`` on an up request for
    ``policy.min_replicas`` (the effective minimum, ``schedule.effective_policy``; ``request``'s
    own targets are not used). A bound, not a step: no scale-up cooldown and no wait for
    convergence apply, and the raise has the reason ``scheduled_minimum``. Everything else is
    ``decide``'s: refusals (paused, update in progress, ``frozen``), restores, dry run,
    ``at_target`` when the service is at or above the minimum."""
    if policy is None:
        return decide(name, request, None, snapshot, now, dry_run=dry_run, record=record, frozen=frozen)
    bound = policy.model_copy(update={"scale_up_cooldown": 0.0, "convergence_wait": 0.0})
    minimum = replace(request, direction=Direction.UP, targets=(policy.min_replicas,), step=False)
    outcome = decide(name, minimum, bound, snapshot, now, dry_run=dry_run, record=record, frozen=frozen)
    return replace(outcome, reason=Reason.SCHEDULED_MINIMUM) if outcome.reason is Reason.SCALED_UP else outcome
