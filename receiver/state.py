"""The scaling state the swarm keeps for us (pure: no I/O).

1. Service labels, written in the same update that changes the replicas: every receiver (a
   restarted one, a second replica) reads the same cooldown state from the swarm.
2. A record per service (stored by ``record_store.py``): the replicas and state labels last
   seen on the service. ``docker stack deploy`` resets replicas and drops the labels; the
   record survives it, so the receiver can restore its last decision.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
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
        return _label_time(value) if len(value) <= _CACHED_TIME_CHARS else parse_rfc3339(value)
    except ValueError:
        raise InvalidStateLabel(label, value) from None


# The values we write have 27 characters; a longer one (whitespace, a long fraction, a value
# sent to the docker gate) is parsed every time: the cache holds at most 1,024 short strings.
_CACHED_TIME_CHARS = 64


@lru_cache(maxsize=1024)
def _label_time(value: str) -> float:
    """A state label's value is read at every decision and changes only with a scale: parsed once
    (a value that cannot be read is not kept: its error is raised every time)."""
    return parse_rfc3339(value)


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


# A service found short counts as converged again once a read finds it whole with its newest
# running task running for this long: Swarm's own default update monitor, the window in which it
# counts a new task's exit as a failure. A crash-looping task is `running` for a moment (~0.1 s on
# this engine) between `starting` and `failed`; a read that meets that moment is not convergence.
SETTLE_SECONDS = 5.0


def running_as_first_seen(
    snapshot: ServiceSnapshot, seen: tuple[str, float] | None, now: float
) -> tuple[ServiceSnapshot, tuple[str, float] | None]:
    """The snapshot with its newest running task's start no earlier than this receiver first saw
    that task running (a node whose clock runs behind stamps it in the past: a crash loop's moment
    of running would look settled) and no later than ``now`` (one ahead); and the sighting to carry."""
    if snapshot.running_since is None or not snapshot.running_task:
        return snapshot, None
    first = seen[1] if seen is not None and seen[0] == snapshot.running_task else now
    return replace(snapshot, running_since=max(min(snapshot.running_since, now), first)), (snapshot.running_task, first)


def unconverged_since(previous: float | None, snapshot: ServiceSnapshot, now: float) -> float | None:
    """Since when the service has been short (tasks on their way, not running), over successive
    reads; None once it is converged.

    A crash-looping task is replaced again and again, each replacement newer than the last: the
    oldest pending task alone would restart the wait every time. Carried from read to read, the
    time is the oldest pending task's creation as first seen (never later than ``now``: the
    engine's clock may run ahead of ours), kept until a read finds the service whole and settled
    (its newest running task running for ``SETTLE_SECONDS``).
    """
    if snapshot.running >= snapshot.replicas:
        started = snapshot.running_since
        if previous is not None and started is not None and now - min(started, now) < SETTLE_SECONDS:
            return previous  # whole for a moment: a crash loop's task between starting and failing
        return None
    if snapshot.pending_since is None:
        # between a failed task and its replacement, or a scale and the tasks it asks for
        return now if previous is None else previous
    first = min(snapshot.pending_since, now)
    return first if previous is None else min(previous, first)


def future_labels_as_first_seen(
    snapshot: ServiceSnapshot, first_seen: dict[str, float], now: float
) -> tuple[ServiceSnapshot, dict[str, float]]:
    """The snapshot with every state label that lies in the future replaced by the time it was
    first seen (and ``clock_ahead`` set to how far ahead it was), so that such a label holds one
    cooldown from then, not until its time comes; and the first-seen times (label value -> time)
    to carry to the next read."""
    fixed: dict[str, str] = {}
    seen: dict[str, float] = {}
    ahead = 0.0
    for label in STATE_LABELS.values():
        value = snapshot.labels.get(label)
        if value is None:
            continue
        try:
            at = decode_time(label, value)
        except InvalidStateLabel:
            continue  # refused by the policy with its reason
        if at > now:
            seen[value] = first_seen.get(value, now)
            fixed[label] = encode_time(seen[value])
            ahead = max(ahead, at - seen[value])
    if not fixed:
        return snapshot, seen
    return replace(snapshot, labels={**snapshot.labels, **fixed}, clock_ahead=ahead), seen


def clock_ahead(state: ServiceState, now: float) -> float:
    """How far the newest state label lies in the future (0 when none does): a writer's clock ran
    ahead, or a hand edit. The policy counts such a time as now."""
    times = [t for t in (state.last_scale_up, state.last_scale_down) if t is not None]
    return max(0.0, max(times, default=now) - now)


# --- the redeploy-proof record ---------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """A service's replicas and state labels as of one service version, under one service ID."""

    replicas: int
    labels: dict[str, str]  # the state labels, verbatim
    service_id: str = ""
    version: int = -1

    def as_data(self, service: str, now: float) -> dict[str, Any]:
        return {"service": service, "service_id": self.service_id, "version": self.version,
                "replicas": self.replicas, "labels": self.labels, "written_at": encode_time(now)}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Record:
        labels, replicas = data.get("labels"), data.get("replicas")
        service_id, version = data.get("service_id", ""), data.get("version", -1)
        if not isinstance(replicas, int) or replicas < 0 or not isinstance(labels, dict) \
                or not isinstance(service_id, str) or not isinstance(version, int):
            raise ValueError(f"not a record: {str(data)[:100]}")
        ours = {k: v for k, v in state_labels_of(labels).items() if isinstance(v, str)}
        return cls(replicas, ours, service_id, version)


def record_of(snapshot: ServiceSnapshot, replicas: int | None = None, labels: dict[str, str] | None = None) -> Record:
    """The record of a service as read, or, given ``replicas`` and ``labels``, as our update of
    it leaves it. The engine does not say the version an update gets, only that it is above the
    one read: such a record is of version read + 1, so that a record written from a read made
    before the update (another receiver's reconcile) never replaces it."""
    if replicas is None or labels is None:
        return Record(snapshot.replicas, state_labels_of(snapshot.labels),
                      snapshot.id, snapshot.version)
    return Record(replicas, state_labels_of(labels), snapshot.id, snapshot.version + 1)


def state_labels_of(labels: dict[str, Any]) -> dict[str, Any]:
    """Only our state labels of a label map."""
    return {k: v for k, v in labels.items() if k in STATE_LABELS.values()}


def has_state_labels(snapshot: ServiceSnapshot) -> bool:
    return any(label in snapshot.labels for label in STATE_LABELS.values())


def restorable(snapshot: ServiceSnapshot, record: Record | None) -> Record | None:
    """The record to put back on a service whose state labels are gone (a stack redeploy), if any:
    only a record of this very service (same ID: not one removed and re-created under its name)
    that holds some of our state labels."""
    if record is None or has_state_labels(snapshot):
        return None
    if record.service_id != snapshot.id or not record.labels:
        return None
    return record


class Repair(StrEnum):
    NONE = "none"
    SAVE = "save"  # the service carries our labels: the record follows it
    RESTORE = "restore"  # our labels are gone (a stack redeploy): put back the record


def plan_repair(snapshot: ServiceSnapshot, record: Record | None, policy: ServicePolicy) -> tuple[Repair, Record | None]:
    """What reconciling one service should do, and with which record.

    (Whether the service may be changed at all is the policy's question: ``policy.not_scalable``.)
    Labels present: the service is the truth (our last scale, or an operator's
    manual scale since) and the record follows it. Labels gone and a restorable record: the
    service was redeployed; restore the recorded replicas, clamped to the bounds, and labels.
    """
    if has_state_labels(snapshot):
        current = record_of(snapshot)
        same = record is not None and (record.replicas, record.labels, record.service_id) == \
            (current.replicas, current.labels, current.service_id)
        return (Repair.NONE, None) if same else (Repair.SAVE, current)
    wanted = restorable(snapshot, record)
    if wanted is None:
        return Repair.NONE, None
    return Repair.RESTORE, Record(policy.clamp(wanted.replicas), wanted.labels, snapshot.id, snapshot.version)
