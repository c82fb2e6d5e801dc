"""A watched copy of the configured services and their tasks, from which decisions read.

Kept current by Docker's event stream: every service event for a configured service re-reads
that service (its spec, version and tasks). The engine emits no task events, and a stream can
stall without closing, so held services are read again (spec and tasks) every ``tasks_interval``,
and everything every ``resync``. The copy is *live* only while the stream is connected and a full
listing has been made since; otherwise reads go to Docker as before. A held service last read
more than ``tasks_max_age`` ago (three re-list intervals: the re-lister is stuck or Docker slow)
is not served either: a decision never counts tasks, nor reads a spec, older than that, a
scale-up's included, which therefore needs no read of its own (one call: the update). Writes
never go through the copy: an update carries the version the copy holds and the engine's version
check stays the guard; after our own update (or a conflict) the service is dropped from the copy
until an event or the next re-list brings it back; the event of our own update (the engine sends
it before its answer) is re-read once that answer is in, not while the engine is still answering
it.

It runs on the receiver's event loop (two tasks, each with its own connection to the engine):
no thread of its own takes the interpreter from a request being answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from .asyncengine import AsyncEngine, AsyncEventStream
from .dockerapi import Target
from .domain import ServiceNotFound, ServiceSnapshot
from .swarmspec import named, snapshot_of

log = logging.getLogger("receiver.watch")


class Absent:
    """The copy knows the service does not exist."""


ABSENT = Absent()
# service, its tasks, the snapshot of both, when the tasks were listed (time.monotonic)
Entry = tuple[dict[str, Any], list[dict[str, Any]], ServiceSnapshot, float]


def _entry(service: dict[str, Any], tasks: list[dict[str, Any]], listed: float) -> Entry:
    return service, tasks, snapshot_of(service, tasks), listed


async def list_tasks(engine: AsyncEngine, service_ids: list[str]) -> list[dict[str, Any]]:
    """The re-lister's task list (a test makes it hang)."""
    return await engine.tasks(*service_ids)


async def read_again(engine: AsyncEngine, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The re-lister's read of a held service: its spec and its tasks, two calls (the docker gate
    lists the tasks of exactly one service per call)."""
    service = named(await engine.call("GET", f"/services/{quote(name, safe='')}"), name)
    return service, await list_tasks(engine, [service["ID"]])


class SwarmCopy:
    def __init__(self, names: Iterable[str], docker_host: str | None, *, timeout: float = 10.0,
                 tasks_interval: float = 1.0, resync: float = 30.0,
                 on_live: Callable[[bool], None] | None = None):
        self.names = frozenset(names)
        self._target = Target.of(docker_host)
        self._timeout = timeout
        self._tasks_interval = tasks_interval
        self.tasks_max_age = 3 * tasks_interval
        self._resync = resync
        self.on_live: Callable[[bool], Any] = on_live or (lambda live: None)
        self._held: dict[str, Entry | Absent] = {}
        self._live = False
        self._generation: dict[str, int] = {}  # service -> events seen: a re-list read older than an event is dropped
        self._tasks: list[asyncio.Task[None]] = []
        self._engine = AsyncEngine(self._target)  # the event stream's re-reads
        self._writes: dict[str, int] = {}  # service -> our updates in flight
        self._to_reread: set[str] = set()  # services whose event came while our update was in flight
        self._rereads: set[asyncio.Task[None]] = set()
        self._written: dict[str, tuple[str, int]] = {}  # service -> (ID, version) our update made stale
        self._epoch = 0  # stream connections dropped: a read begun before a drop is not stored after it
        self._stopped = False

    # --- what the receiver asks ---------------------------------------------------------------

    @property
    def live(self) -> bool:
        return self._live

    def get(self, name: str) -> ServiceSnapshot | Absent | None:
        """The held snapshot; ``ABSENT`` when the service is known not to exist; None when the
        copy cannot answer (not live, the service not held, or its tasks listed longer than
        ``tasks_max_age`` ago): read Docker instead."""
        entry = self._held.get(name) if self._live else None
        if entry is None or isinstance(entry, Absent):
            return entry
        return entry[2] if time.monotonic() - entry[3] <= self.tasks_max_age else None

    def writing(self, name: str) -> None:
        """Our update of ``name`` is on its way: an event for it waits for ``written``."""
        self._writes[name] = self._writes.get(name, 0) + 1

    def written(self, name: str, service_id: str, version: int) -> None:
        """Our update of ``name`` (read at ``version``) is answered, or failed: the copy of that
        version is stale now, and no read of it in flight is stored; an event that came
        meanwhile is re-read."""
        self.forget(name, version)
        self._written[name] = (service_id, version)
        self._writes[name] -= 1
        if self._writes[name] > 0:
            return
        del self._writes[name]
        if name in self._to_reread and not self._stopped:
            self._to_reread.discard(name)
            task = asyncio.get_running_loop().create_task(self._reread(name))
            self._rereads.add(task)
            task.add_done_callback(self._rereads.discard)

    def forget(self, name: str, version: int) -> None:
        """Our own write (or a conflict) made the held service of ``version`` stale: read Docker until
        an event brings a newer one (one that already came is kept)."""
        held = self._held.get(name)
        if not isinstance(held, tuple) or held[0]["Version"]["Index"] <= version:
            self._held.pop(name, None)

    # --- keeping it current -----------------------------------------------------------------

    def start(self) -> None:
        """Starts following on the running loop."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._follow_events(), name="swarm-events"),
                       loop.create_task(self._refresh_tasks(), name="swarm-tasks")]

    async def stop(self) -> None:
        self._stopped = True
        tasks = self._tasks + list(self._rereads)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        self._engine.close()

    def _set_live(self, live: bool) -> None:
        if live != self._live:
            self._live = live
            self.on_live(live)
            log.info(json.dumps({"event": "swarm_copy", "live": live}))

    def _current(self, name: str, entry: Entry | Absent, epoch: int) -> bool:
        """Whether a read begun in ``epoch`` may be stored: not across a drop of the stream, and
        not a version our own update made stale."""
        if epoch != self._epoch:
            return False
        stale = self._written.get(name)
        return not (isinstance(entry, tuple) and stale is not None and entry[0]["ID"] == stale[0]
                    and entry[0]["Version"]["Index"] <= stale[1])

    async def _read(self, engine: AsyncEngine, name: str, again: bool = False) -> Entry | Absent:
        listed = time.monotonic()  # before the listing: its age is never understated
        try:
            read = read_again(engine, name) if again else engine.read_service(name)
            service, tasks = await asyncio.wait_for(read, self._timeout)
        except ServiceNotFound:
            return ABSENT
        return _entry(service, tasks, listed)

    def _store(self, name: str, entry: Entry | Absent, epoch: int) -> None:
        if not self._current(name, entry, epoch):
            return
        held = self._held.get(name)
        if isinstance(entry, tuple) and isinstance(held, tuple) and held[0]["ID"] == entry[0]["ID"] \
                and held[0]["Version"]["Index"] > entry[0]["Version"]["Index"]:
            return  # a newer read was stored meanwhile
        self._held[name] = entry

    async def _reread(self, name: str) -> None:
        """The deferred read of an event that came during our update; dropped when another event
        came meanwhile (that one is read in turn), or on failure: reads go to Docker until the next
        event or re-list brings the service back."""
        generation, epoch = self._generation.get(name, 0), self._epoch
        try:
            entry = await self._read(self._engine, name)
        except Exception as err:  # noqa: BLE001 - not held: decisions read Docker
            log.warning(json.dumps({"event": "swarm_copy_reread_failed", "service": name,
                                    "error": f"{type(err).__name__}: {err}"[:300]}))
            return
        if self._live and self._generation.get(name, 0) == generation:
            self._store(name, entry, epoch)

    async def _relist(self, engine: AsyncEngine, names: Iterable[str] | None = None, again: bool = False) -> None:
        epoch = self._epoch
        for name in self.names if names is None else names:
            generation = self._generation.get(name, 0)
            entry = await self._read(engine, name, again)
            if self._generation.get(name, 0) == generation:  # no event for it while we read: not older
                self._store(name, entry, epoch)

    async def _follow_events(self) -> None:
        backoff = 0.5
        while True:
            engine = self._engine
            stream: AsyncEventStream | None = None
            followed = 0.0
            epoch = self._epoch  # bumped when a connection drops
            try:
                stream = await asyncio.wait_for(engine.events({"type": ["service"]}), self._timeout)
                await self._relist(engine)  # after subscribing: nothing between the listing and the stream is lost
                self._set_live(True)
                started = time.monotonic()
                async for event in stream:
                    name = (event.get("Actor") or {}).get("Attributes", {}).get("name")
                    if name not in self.names:
                        continue
                    self._generation[name] = self._generation.get(name, 0) + 1
                    if event.get("Action") == "remove":
                        self._store(name, ABSENT, epoch)
                    elif name in self._writes:  # most likely our own update's: read once it is answered
                        self._to_reread.add(name)
                    else:
                        self._store(name, await self._read(engine, name), epoch)
                followed = time.monotonic() - started
                # the engine (or a proxy in between) ended the stream
                raise ConnectionError(f"the event stream ended after {followed:.1f}s")
            except Exception as err:  # noqa: BLE001 - any failure: not live, reconnect
                log.warning(json.dumps({"event": "swarm_events_lost", "error": f"{type(err).__name__}: {err}"[:300]}))
            finally:  # cancelled (stopping) or failed: nothing held is trusted any more
                self._set_live(False)
                self._epoch += 1  # reads begun on this connection are not stored now
                self._held.clear()
                self._to_reread.clear()
                if stream is not None:
                    stream.close()
                engine.close()
            # A stream that held for a while reconnects at once; one that keeps failing backs off.
            backoff = 0.5 if followed >= 30 else min(backoff * 2, 10.0)
            await asyncio.sleep(backoff)

    async def _refresh_tasks(self) -> None:
        engine = AsyncEngine(self._target)
        last_resync = time.monotonic()
        try:
            while True:
                await asyncio.sleep(self._tasks_interval)
                if not self._live:
                    continue
                try:
                    if time.monotonic() - last_resync >= self._resync:
                        await self._relist(engine)
                        last_resync = time.monotonic()
                        continue
                    # The spec as well as the tasks, and whether it exists: an event stream can
                    # stall without closing (nothing says so); nothing is served older than a round.
                    await self._relist(engine, list(self._held), again=True)
                except Exception as err:  # noqa: BLE001 - the next round tries again
                    log.warning(json.dumps({"event": "swarm_tasks_not_read", "error": f"{type(err).__name__}: {err}"[:300]}))
                    engine.close()
        finally:
            engine.close()
