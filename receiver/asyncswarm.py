"""``AsyncSwarm``: a blocking ``Swarm`` run off the event loop, one call at a time, each within a
timeout, reporting every call's latency and error to an observer (the metrics); service reads are
answered by the watched copy (``watch.py``) when it can, and the real adapter's calls on a scale's
answer path (the update) is made from the loop itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .asyncengine import AsyncEngine
from .dockerapi import DockerSwarm
from .domain import DockerTimeout, NodeStatus, ServiceNotFound, ServiceSnapshot, Swarm, SwarmError
from .metrics import COPY_READ
from .watch import Absent, SwarmCopy

T = TypeVar("T")

Observer = Callable[[str, float, "SwarmError | None"], None]


class AsyncSwarm:
    """Runs a blocking ``Swarm`` on one worker thread (its client is one connection: one call at a
    time), each call bounded by ``timeout``, reporting ``(operation, seconds, error)`` to ``observe``.
    With the real adapter, a scale's update goes from the loop on a connection of its
    own (``asyncengine.AsyncEngine``), under the same timeout and reports."""

    def __init__(self, swarm: Swarm, timeout: float, observe: Observer | None = None, copy: SwarmCopy | None = None):
        self._swarm = swarm
        self.copy = copy
        self._timeout = timeout
        self._observe = observe or (lambda op, seconds, err: None)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docker")
        self._answer_path: AsyncEngine | None = None
        kind = type(swarm)
        # Only the adapter's own calls are replaced: a subclass that changes them (a test that
        # interferes between read and write) keeps them.
        if isinstance(swarm, DockerSwarm) and kind.set_replicas is DockerSwarm.set_replicas:
            try:
                self._answer_path = AsyncEngine(swarm.target())
            except SwarmError:
                pass  # an address it cannot use: every call through the thread reports it

    async def _call(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await self._timed(operation, loop.run_in_executor(self._executor, fn, *args))

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        start = time.perf_counter()
        error: SwarmError | None = None
        try:
            async with asyncio.timeout(self._timeout):  # no task of its own, as wait_for would make
                return await call
        except TimeoutError:
            error = DockerTimeout(f"{operation} took longer than {self._timeout}s")
            raise error from None
        except SwarmError as err:
            error = err
            raise
        finally:
            self._observe(operation, time.perf_counter() - start, error)

    async def inspect(self, name: str) -> ServiceSnapshot:
        """From the watched copy when it can answer (no Docker call, no thread hop), else from Docker."""
        held = None if self.copy is None else self.copy.get(name)
        if isinstance(held, ServiceSnapshot):
            self._observe(COPY_READ, 0.0, None)
            return held
        if isinstance(held, Absent):
            self._observe(COPY_READ, 0.0, None)
            raise ServiceNotFound(f"no service named {name!r}", 404)
        return await self._call("inspect", self._swarm.inspect, name)

    async def set_replicas(self, snapshot: ServiceSnapshot, replicas: int, labels: dict[str, str]) -> None:
        if self.copy is not None:
            self.copy.writing(snapshot.name)
        try:
            if self._answer_path is not None:
                await self._timed("update", self._answer_path.set_replicas(snapshot, replicas, labels))
            else:
                await self._call("update", self._swarm.set_replicas, snapshot, replicas, labels)
        finally:
            if self.copy is not None:
                self.copy.written(snapshot.name, snapshot.id, snapshot.version)  # stale now, whatever happened

    async def node_status(self) -> NodeStatus:
        return await self._call("node_status", self._swarm.node_status)

    async def read_record(self, name: str) -> dict[str, Any] | None:
        return await self._call("read_record", self._swarm.read_record, name)

    async def write_record(self, name: str, record: dict[str, Any], version: int) -> bool:
        return await self._call("write_record", self._swarm.write_record, name, record, version)

    async def remove_records(self, name: str) -> int:
        return await self._call("remove_records", self._swarm.remove_records, name)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._answer_path is not None:
            self._answer_path.close()
