"""An in-memory swarm behind the ``Swarm`` protocol, for fast handler tests only.

It keeps the engine's version check (a stale version is an ``UpdateConflict``); the real-engine
tests in tests/swarm prove the same behaviours against dockerd.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field

from receiver.domain import NodeStatus, ServiceNotFound, ServiceSnapshot, UpdateConflict


@dataclass
class FakeService:
    name: str
    replicas: int = 1
    mode: str = "replicated"
    running: int | None = None  # None: as many as replicas
    labels: dict[str, str] = field(default_factory=dict)
    version: int = 1
    pending_since: float | None = None
    running_since: float | None = None  # when the newest running task started running (its node's clock)
    running_task: str = ""  # and its ID
    id: str = ""  # "" : id-<name>; set another to play a service re-created under the same name
    updating: bool = False  # a rolling update in progress


class FakeSwarm:
    def __init__(self, *services: FakeService):
        self.services = {s.name: s for s in services}
        self.calls: list[str] = []
        self.failures: list[Exception] = []  # raised, in order, by the next calls
        self.node = NodeStatus(swarm_state="active", manager=True)
        self.records: dict[str, dict] = {}
        self.record_versions: dict[str, int] = {}
        self.before_update = None  # callable run inside set_replicas before the version check
        self._lock = threading.Lock()

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def inspect(self, name: str) -> ServiceSnapshot:
        with self._lock:
            self.calls.append(f"inspect {name}")
            self._maybe_fail()
            s = self.services.get(name)
            if s is None:
                raise ServiceNotFound(name)
            mode_key = {"replicated": "Replicated", "global": "Global"}[s.mode]
            spec = {"Name": name, "Labels": dict(s.labels), "Mode": {mode_key: {"Replicas": s.replicas} if s.mode == "replicated" else {}}}
            return ServiceSnapshot(
                id=s.id or f"id-{name}", name=name, updating=s.updating, version=s.version, mode=s.mode,
                replicas=s.replicas if s.mode == "replicated" else 0,
                running=s.replicas if s.running is None else s.running,
                pending_since=s.pending_since, running_since=s.running_since, running_task=s.running_task,
                labels=dict(s.labels),
                spec=copy.deepcopy(spec),
            )

    def set_replicas(self, snapshot: ServiceSnapshot, replicas: int, labels: dict[str, str]) -> None:
        if self.before_update is not None:
            hook, self.before_update = self.before_update, None
            hook()
        with self._lock:
            self.calls.append(f"update {snapshot.name} {replicas}")
            self._maybe_fail()
            s = self.services.get(snapshot.name)
            if s is None:
                raise ServiceNotFound(f"service {snapshot.id} not found", 404)
            if s.version != snapshot.version:
                raise UpdateConflict("rpc error: code = Unknown desc = update out of sequence")
            s.replicas = replicas
            s.labels.update(labels)
            s.version += 1

    def node_status(self) -> NodeStatus:
        with self._lock:
            self.calls.append("node_status")
            self._maybe_fail()
            return self.node

    def read_record(self, name: str) -> dict | None:
        with self._lock:
            self.calls.append(f"read_record {name}")
            self._maybe_fail()
            return copy.deepcopy(self.records.get(name))

    def write_record(self, name: str, record: dict, version: int) -> bool:
        """As the record store: a record of an older or equal version than the stored one is not stored."""
        with self._lock:
            self.calls.append(f"write_record {name}")
            self._maybe_fail()
            if self.record_versions.get(name, -1) >= version:
                return False
            self.records[name] = copy.deepcopy(record)
            self.record_versions[name] = version
            return True

    def remove_records(self, name: str) -> int:
        with self._lock:
            self.calls.append(f"remove_records {name}")
            self._maybe_fail()
            self.record_versions.pop(name, None)
            return 1 if self.records.pop(name, None) is not None else 0

    @property
    def updates(self) -> list[str]:
        return [c for c in self.calls if c.startswith("update")]
