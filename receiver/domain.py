"""The types the core shares: directions, reason codes, requests, what the swarm says, outcomes,
and the errors a Docker adapter raises. No I/O and no docker-py here."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"


class Reason(StrEnum):
    # The replicas change.
    SCALED_UP = "scaled_up"
    SCALED_DOWN = "scaled_down"
    CLAMPED_TO_MAX = "clamped_to_max"  # a step or target above max, lowered to max
    CLAMPED_TO_MIN = "clamped_to_min"  # a step or target below min, raised to min
    RESTORED = "restored"  # a redeploy reset the service; the recorded decision is put back
    WOKEN = "woken"  # a request arrived for a service at 0 replicas: 0 -> 1 (receiver/wake.py)
    SCHEDULED_MINIMUM = "scheduled_minimum"  # raised to the minimum of a scheduled window (schedule.py)
    # Policy no-ops.
    AT_MAX = "at_max"
    AT_MIN = "at_min"
    AT_TARGET = "at_target"  # desired_replicas asks for no move in the alert's direction
    COOLDOWN = "cooldown"
    NOT_CONVERGED = "not_converged"  # fewer tasks run than the service asks for already
    UPDATE_IN_PROGRESS = "update_in_progress"  # a rolling update (or rollback) is under way
    # Refusals: the service cannot or must not be scaled.
    UNCONFIGURED_SERVICE = "unconfigured_service"
    SERVICE_NOT_FOUND = "service_not_found"
    GLOBAL_MODE = "global_mode"
    INVALID_STATE_LABEL = "invalid_state_label"
    PAUSED = "paused"  # the service carries the pause label
    FROZEN = "frozen"  # a silence mutes the service's scaling alerts (a wake is not made either)
    DOCKER_REFUSED = "docker_refused"  # Docker (or the access gate) refused for good: not retried
    # A transient Docker failure: answered 503 so Alertmanager retries.
    DOCKER_ERROR = "docker_error"
    # Alerts that ask for nothing.
    RESOLVED = "resolved"
    MISSING_LABELS = "missing_labels"
    INVALID_SCALE_LABEL = "invalid_scale_label"

    @property
    def changes(self) -> bool:
        return self in _CHANGING


_CHANGING = frozenset(
    {Reason.SCALED_UP, Reason.SCALED_DOWN, Reason.CLAMPED_TO_MAX, Reason.CLAMPED_TO_MIN, Reason.RESTORED,
     Reason.WOKEN, Reason.SCHEDULED_MINIMUM}
)


@dataclass(frozen=True)
class ScaleRequest:
    """What the firing alerts of one service ask for, merged.

    ``targets`` holds each ``desired_replicas`` asked for; ``step`` is true when at least one
    alert asked for a plain step. The largest resulting target wins, except that a target of 0
    (the idle rule's) wins a scale-down: only such a target takes a service to 0, never a step.
    ``wake``: not an alert but a client's request held while the service has no replica.
    """

    direction: Direction
    targets: tuple[int, ...] = ()
    step: bool = False
    wake: bool = False


@dataclass(frozen=True)
class ServiceState:
    """The policy's view of a service at decision time (times are epoch seconds)."""

    replicas: int
    running: int
    last_scale_up: float | None = None
    last_scale_down: float | None = None
    # since when the service has been short (tasks that should run do not), carried by the
    # scaler until a read finds it whole and settled (state.unconverged_since); None: converged
    pending_since: float | None = None

    @property
    def last_change(self) -> float | None:
        times = [t for t in (self.last_scale_up, self.last_scale_down) if t is not None]
        return max(times) if times else None


@dataclass(frozen=True)
class Outcome:
    """One decision for one service, as answered, logged and counted.

    ``apply`` holds the service labels to write with ``target`` replicas when the decision is
    to be applied; None when nothing is sent to Docker (a no-op, a refusal, a dry run).
    """

    service: str
    direction: Direction
    reason: Reason
    current: int | None = None
    target: int | None = None
    at: float = 0.0
    details: dict[str, object] = field(default_factory=dict)
    dry_run: bool = False
    apply: dict[str, str] | None = field(default=None, repr=False)

    @property
    def applied(self) -> bool:
        return self.reason.changes and not self.dry_run

    def as_dict(self) -> dict[str, object]:
        answer: dict[str, object] = {
            "service": self.service,
            "direction": str(self.direction),
            "from": self.current,
            "to": self.target,
            "reason": str(self.reason),
        }
        if self.dry_run and self.reason.changes:
            answer["dry_run"] = "would"  # dry run: the decision was made, nothing was changed
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


# --- what the swarm says, and how a call to it fails -------------------------------------------


@dataclass(frozen=True)
class ServiceSnapshot:
    id: str
    name: str
    version: int
    mode: str  # "replicated", "global", or whatever else the engine reports
    replicas: int  # 0 for modes other than replicated
    running: int  # tasks desired running and running
    # since when tasks that should run do not (desired running or ready): from the oldest such task,
    # or, carried by the scaler, from its first read that found the service short; epoch seconds
    pending_since: float | None
    labels: dict[str, str]
    spec: dict[str, Any] = field(repr=False)
    updating: bool = False  # a rolling update (or its rollback) is in progress or paused
    clock_ahead: float = 0.0  # seconds a state label was ahead of this receiver's clock when first seen
    # since when the newest running task has been running (its node's time for that state), if any,
    # and its ID (the scaler never lets that time be earlier than it first saw the task running)
    running_since: float | None = None
    running_task: str = ""


@dataclass(frozen=True)
class NodeStatus:
    swarm_state: str  # "active", "inactive", "pending", "error", "locked"
    manager: bool  # this engine is a manager (ControlAvailable)
    leader_reachable: bool = True  # the swarm API answers: the managers have a leader (quorum)
    error: str = ""


class SwarmError(Exception):
    """A Docker call failed. ``kind`` names the failure for metrics and answers; ``transient``
    says whether trying again later can succeed (then the webhook answers 503)."""

    kind = "api_error"

    def __init__(self, message: str = "", status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status is None or self.status >= 500


class DockerUnavailable(SwarmError):
    kind = "unavailable"


class DockerTimeout(SwarmError):
    kind = "timeout"


class UpdateConflict(SwarmError):
    """The service changed since it was read (``update out of sequence``)."""

    kind = "conflict"


class ServiceNotFound(SwarmError):
    kind = "not_found"


class Swarm(Protocol):
    """What the scaler needs from Docker: read a service, set its replicas, a health probe,
    and the record store (a record describes one service version; the newest version wins)."""

    def inspect(self, name: str) -> ServiceSnapshot: ...

    def set_replicas(self, snapshot: ServiceSnapshot, replicas: int, labels: dict[str, str]) -> None: ...

    def node_status(self) -> NodeStatus: ...

    def read_record(self, name: str) -> dict[str, Any] | None: ...

    def write_record(self, name: str, record: dict[str, Any], version: int) -> bool: ...

    def remove_records(self, name: str) -> int: ...
