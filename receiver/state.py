"""The scaling state the swarm keeps for us (pure: no I/O).

1. Service labels, written in the same update that changes the replicas: every receiver (a
   restarted one, a second replica) reads the same cooldown state from the swarm.
2. A record per service (stored by ``record_store.py``): the replicas and state labels last
   seen on the service. ``docker stack deploy`` resets replicas and drops the labels; the
   record survives it, so the receiver can restore its last decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .config import ServicePolicy
from .domain import Direction, ServiceSnapshot, ServiceState
from .timeutil import format_rfc3339, parse_rfc3339

LABEL_PREFIX = "swarm-autoscaler."
STATE_LABELS = {
    Direction.UP: LABEL_PREFIX + "last-scale-up",
    Direction.DOWN: LABEL_PREFIX + "last-scale-down",
}
# Set by an operator (`docker service update --label-add swarm-autoscaler.paused=true S`):
# the receiver refuses to scale S with reason `paused` until the label is removed.
PAUSE_LABEL = LABEL_PREFIX + "paused"


def is_paused(labels: dict[str, str]) -> bool:
    return labels.get(PAUSE_LABEL, "").strip().lower() in ("true", "yes", "1")


class InvalidStateLabel(ValueError):
    def __init__(self, label: str, value: str):
        self.label = label
        super().__init__(f"service label {label}={value[:60]!r} is not an RFC 3339 UTC time")


def encode_time(epoch: float) -> str:
    return format_rfc3339(epoch)


def decode_time(label: str, value: str) -> float:
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise InvalidStateLabel(label, value) from None


def state_labels(direction: Direction, now: float) -> dict[str, str]:
    """The labels to write with a scale in ``direction`` at ``now``."""
    return {STATE_LABELS[direction]: encode_time(now)}


def service_state(snapshot: ServiceSnapshot) -> ServiceState:
    """The policy's view of a service; raises InvalidStateLabel for a label it cannot read."""
    times: dict[Direction, float | None] = {}
    for direction, label in STATE_LABELS.items():
        value = snapshot.labels.get(label)
        times[direction] = None if value is None else decode_time(label, value)
    return ServiceState(
        replicas=snapshot.replicas,
        running=snapshot.running,
        last_scale_up=times[Direction.UP],
        last_scale_down=times[Direction.DOWN],
        pending_since=snapshot.pending_since,
    )


# --- the redeploy-proof record ---------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    replicas: int
    labels: dict[str, str]  # the state labels, verbatim

    def as_data(self, service: str, now: float) -> dict[str, Any]:
        return {"service": service, "replicas": self.replicas, "labels": self.labels, "written_at": encode_time(now)}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Record:
        labels = data.get("labels")
        replicas = data.get("replicas")
        if not isinstance(replicas, int) or replicas < 0 or not isinstance(labels, dict):
            raise ValueError(f"not a record: {str(data)[:100]}")
        return cls(replicas, {k: v for k, v in labels.items() if k in STATE_LABELS.values() and isinstance(v, str)})


def record_of(replicas: int, labels: dict[str, str]) -> Record:
    """The record matching a service's replicas and (state) labels."""
    return Record(replicas, {k: labels[k] for k in STATE_LABELS.values() if k in labels})


class Repair(StrEnum):
    NONE = "none"
    SAVE = "save"  # the service carries our labels: the record follows it
    RESTORE = "restore"  # our labels are gone (a stack redeploy): put back the record


def plan_repair(snapshot: ServiceSnapshot, record: Record | None, policy: ServicePolicy) -> tuple[Repair, Record | None]:
    """What reconciling one service should do, and with which record.

    Labels present: the service is the truth (our last scale, or an operator's manual scale
    since) and the record follows it. Labels gone but a record exists: the service was
    re-created or redeployed; restore the recorded replicas, clamped to the bounds, and labels.
    """
    current = record_of(snapshot.replicas, snapshot.labels)
    if current.labels:
        return (Repair.NONE, None) if record == current else (Repair.SAVE, current)
    if record is None:
        return Repair.NONE, None
    return Repair.RESTORE, Record(policy.clamp(record.replicas), record.labels)
