"""The scaling state kept on the Swarm service itself, as service labels.

They are written in the same update that changes the replicas, so every receiver (a restarted
one, a second replica) reads the same cooldown state from the swarm.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .policy import Direction, ServiceState
from .swarm import ServiceSnapshot

LABEL_PREFIX = "swarm-autoscaler."
STATE_LABELS = {
    Direction.UP: LABEL_PREFIX + "last-scale-up",
    Direction.DOWN: LABEL_PREFIX + "last-scale-down",
}


class InvalidStateLabel(ValueError):
    def __init__(self, label: str, value: str):
        self.label = label
        super().__init__(f"service label {label}={value[:60]!r} is not an RFC 3339 UTC time")


def encode_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decode_time(label: str, value: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidStateLabel(label, value) from None
    if parsed.tzinfo is None:
        raise InvalidStateLabel(label, value)
    return parsed.timestamp()


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
