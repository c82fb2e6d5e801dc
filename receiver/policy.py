"""The scaling decision: a pure function of request, state, policy and time.

No I/O and no clock: ``decide`` is given ``now`` and returns the target with a reason code.
The same code is answered over HTTP, logged and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .config import ServicePolicy


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"


class Reason(StrEnum):
    # The replicas change.
    SCALED_UP = "scaled_up"
    SCALED_DOWN = "scaled_down"
    CLAMPED_TO_MAX = "clamped_to_max"  # a step or target above max, lowered to max
    CLAMPED_TO_MIN = "clamped_to_min"  # a step or target below min, raised to min
    DRY_RUN = "dry_run"  # would change, but dry_run is on
    RESTORED = "restored"  # a redeploy reset the service; the recorded decision is put back
    # Policy no-ops.
    AT_MAX = "at_max"
    AT_MIN = "at_min"
    AT_TARGET = "at_target"  # desired_replicas asks for no move in the alert's direction
    COOLDOWN = "cooldown"
    NOT_CONVERGED = "not_converged"  # fewer tasks run than the service asks for already
    # Refusals: the service cannot or must not be scaled.
    UNCONFIGURED_SERVICE = "unconfigured_service"
    SERVICE_NOT_FOUND = "service_not_found"
    GLOBAL_MODE = "global_mode"
    INVALID_STATE_LABEL = "invalid_state_label"
    PAUSED = "paused"  # the service carries the pause label
    # Alerts that ask for nothing.
    RESOLVED = "resolved"
    MISSING_LABELS = "missing_labels"
    INVALID_SCALE_LABEL = "invalid_scale_label"

    @property
    def changes(self) -> bool:
        return self in _CHANGING


_CHANGING = frozenset(
    {Reason.SCALED_UP, Reason.SCALED_DOWN, Reason.CLAMPED_TO_MAX, Reason.CLAMPED_TO_MIN, Reason.RESTORED}
)


@dataclass(frozen=True)
class ScaleRequest:
    """What the firing alerts of one service ask for, merged.

    ``targets`` holds each ``desired_replicas`` asked for; ``step`` is true when at least one
    alert asked for a plain step. The largest resulting target wins.
    """

    direction: Direction
    targets: tuple[int, ...] = ()
    step: bool = False


@dataclass(frozen=True)
class ServiceState:
    """What the swarm says about a service at decision time (times are epoch seconds)."""

    replicas: int
    running: int
    last_scale_up: float | None = None
    last_scale_down: float | None = None
    pending_since: float | None = None  # oldest task that should run but does not, if any

    @property
    def last_change(self) -> float | None:
        times = [t for t in (self.last_scale_up, self.last_scale_down) if t is not None]
        return max(times) if times else None


@dataclass(frozen=True)
class Decision:
    direction: Direction
    current: int
    target: int
    reason: Reason
    min_replicas: int
    max_replicas: int
    cooldown_remaining: float = 0.0
    details: dict[str, object] = field(default_factory=dict)


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
    return max(0.0, since + length - now)


def _wanted(request: ScaleRequest, current: int, policy: ServicePolicy) -> int:
    step = policy.scale_up_step if request.direction is Direction.UP else -policy.scale_down_step
    candidates = list(request.targets)
    if request.step or not candidates:
        candidates.append(current + step)
    return max(candidates)


def decide(request: ScaleRequest, state: ServiceState, policy: ServicePolicy, now: float) -> Decision:
    lo, hi = policy.min_replicas, policy.max_replicas
    current = state.replicas
    up = request.direction is Direction.UP

    def result(target: int, reason: Reason, **details: object) -> Decision:
        return Decision(
            direction=request.direction,
            current=current,
            target=target,
            reason=reason,
            min_replicas=lo,
            max_replicas=hi,
            cooldown_remaining=cooldown_remaining(request.direction, state, policy, now),
            details=details,
        )

    if up and current >= hi:
        return result(current, Reason.AT_MAX)
    if not up and current <= lo:
        return result(current, Reason.AT_MIN)
    if cooldown_remaining(request.direction, state, policy, now) > 0:
        return result(current, Reason.COOLDOWN)
    if up and state.running < current and state.pending_since is not None:
        # Tasks that should run are starting (pulling, loading a model): wait for them, up to
        # convergence_wait. With none pending there is nothing to wait for.
        waited = now - state.pending_since
        if waited < policy.convergence_wait:
            return result(current, Reason.NOT_CONVERGED, running=state.running, waited=round(waited, 3))

    wanted = _wanted(request, current, policy)
    target = min(max(wanted, lo), hi)
    if (up and target <= current) or (not up and target >= current):
        return result(current, Reason.AT_TARGET, wanted=wanted)
    if target != wanted:
        return result(target, Reason.CLAMPED_TO_MAX if wanted > hi else Reason.CLAMPED_TO_MIN, wanted=wanted)
    return result(target, Reason.SCALED_UP if up else Reason.SCALED_DOWN)
