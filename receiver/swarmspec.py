"""Pure: what the engine's service and task JSON mean to a decision (the snapshot, the running
count, the tasks on their way) and the spec a scale sends. No I/O."""

from __future__ import annotations

from typing import Any

from .domain import ServiceNotFound, ServiceSnapshot
from .timeutil import parse_rfc3339

# UpdateStatus states of a rolling update (or rollback) not finished, paused ones included: a
# scale then would become the PreviousSpec that `docker service rollback` returns to (seen on
# this engine: after a scale mid-update, rollback kept the new image).
UPDATE_IN_PROGRESS_STATES = frozenset({"updating", "paused", "rollback_started", "rollback_paused"})


def named(service: dict[str, Any], name: str) -> dict[str, Any]:
    """The inspected service when it is the one of exactly this name, else ``ServiceNotFound``
    (inspect also matches IDs and ID prefixes: only the exact name counts)."""
    if service["Spec"].get("Name") != name:
        raise ServiceNotFound(f"no service named {name!r}", 404)
    return service


def task_filters(*service_ids: str) -> dict[str, list[str]]:
    """The tasks a snapshot counts. Desired "ready": a replacement for a failed task, or for one of
    a lost node, waiting out the restart delay; it is on its way, like a task that is starting."""
    return {"service": list(service_ids), "desired-state": ["running", "ready"]}


def _is_running(task: dict[str, Any]) -> bool:
    return task.get("DesiredState") == "running" and task.get("Status", {}).get("State") == "running"


def task_counts(tasks: list[dict[str, Any]]) -> tuple[int, float | None, tuple[float, str] | None]:
    """Pure: tasks running, since when the oldest of the others (on their way) exists, and the
    newest running task: since when it has been running (the time its node gave) and its ID."""
    running = [t for t in tasks if _is_running(t)]
    pending = [parse_rfc3339(t["CreatedAt"]) for t in tasks if not _is_running(t)]
    started = [(parse_rfc3339(t["Status"]["Timestamp"]), t.get("ID", "")) for t in running if t["Status"].get("Timestamp")]
    return len(running), min(pending) if pending else None, max(started) if started else None


def update_spec(snapshot: ServiceSnapshot, replicas: int, labels: dict[str, str]) -> dict[str, Any]:
    """Pure: the spec a scale sends, the one read with replicas and these labels replaced. Only the
    two replaced keys are new objects; nothing read is changed in place."""
    spec = snapshot.spec
    return {**spec, "Mode": {"Replicated": {"Replicas": replicas}}, "Labels": {**(spec.get("Labels") or {}), **labels}}


def snapshot_of(service: dict[str, Any], tasks: list[dict[str, Any]]) -> ServiceSnapshot:
    """Pure: the snapshot of an inspected service and its tasks (desired running or ready)."""
    spec = service["Spec"]
    mode_spec = spec.get("Mode", {})
    mode = next(iter(mode_spec), "unknown").lower()
    replicas = int(mode_spec.get("Replicated", {}).get("Replicas", 0)) if mode == "replicated" else 0
    running, pending_since, newest = task_counts(tasks)
    update_state = (service.get("UpdateStatus") or {}).get("State", "")
    return ServiceSnapshot(
        id=service["ID"],
        name=spec.get("Name", ""),
        version=int(service["Version"]["Index"]),
        mode=mode,
        replicas=replicas,
        running=running,
        pending_since=pending_since,
        running_since=newest[0] if newest else None,
        running_task=newest[1] if newest else "",
        labels=dict(spec.get("Labels") or {}),
        spec=spec,
        updating=update_state in UPDATE_IN_PROGRESS_STATES,
    )
