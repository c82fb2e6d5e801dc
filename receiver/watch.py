"""A watched copy of the configured services and their tasks, from which decisions read.

Kept current by Docker's event stream: every service event for a configured service re-reads
that service (its spec, version and tasks). The engine emits no task events, so the tasks of
held services are re-listed every ``tasks_interval``, and everything every ``resync``. The copy
is *live* only while the stream is connected and a full listing has been made since; otherwise
reads go to Docker as before. Writes never go through the copy: an update carries the version
the copy holds and the engine's version check stays the guard; after our own update (or a
conflict) the service is dropped from the copy until an event or the next re-list brings it back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from .dockerapi import Engine, EventStream, read_service, service_tasks, snapshot_of
from .domain import ServiceNotFound, ServiceSnapshot

log = logging.getLogger("receiver.watch")


class Absent:
    """The copy knows the service does not exist."""


ABSENT = Absent()
Entry = tuple[dict[str, Any], list[dict[str, Any]], ServiceSnapshot]  # service, its tasks, the snapshot of both


def _entry(service: dict[str, Any], tasks: list[dict[str, Any]]) -> Entry:
    return service, tasks, replace(snapshot_of(service, tasks), from_copy=True)


class SwarmCopy:
    def __init__(self, names: Iterable[str], connect: Callable[[], Engine], *,
                 tasks_interval: float = 1.0, resync: float = 30.0,
                 on_live: Callable[[bool], None] | None = None):
        self.names = frozenset(names)
        self._connect = connect
        self._tasks_interval = tasks_interval
        self._resync = resync
        self.on_live: Callable[[bool], Any] = on_live or (lambda live: None)
        self._lock = threading.Lock()
        self._held: dict[str, Entry | Absent] = {}
        self._live = False
        self._stop = threading.Event()
        self._stream: EventStream | None = None
        self._generation: dict[str, int] = {}  # service -> events seen: a re-list read older than an event is dropped
        self._threads: list[threading.Thread] = []

    # --- what the receiver asks ---------------------------------------------------------------

    @property
    def live(self) -> bool:
        return self._live

    def get(self, name: str) -> ServiceSnapshot | Absent | None:
        """The held snapshot; ``ABSENT`` when the service is known not to exist; None when the
        copy cannot answer (not live, or the service not held): read Docker instead."""
        with self._lock:
            entry = self._held.get(name) if self._live else None
        return entry if entry is None or isinstance(entry, Absent) else entry[2]

    def forget(self, name: str, version: int) -> None:
        """Our own write (or a conflict) made the held service of ``version`` stale: read Docker until
        an event brings a newer one (one that already came is kept)."""
        with self._lock:
            held = self._held.get(name)
            if not isinstance(held, tuple) or held[0]["Version"]["Index"] <= version:
                self._held.pop(name, None)

    # --- keeping it current -----------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._follow_events, "swarm-events"), (self._refresh_tasks, "swarm-tasks")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        for thread in self._threads:
            thread.join(5)

    def _set_live(self, live: bool) -> None:
        if live != self._live:
            self._live = live
            self.on_live(live)
            log.info(json.dumps({"event": "swarm_copy", "live": live}))

    def _read(self, api: Engine, name: str) -> Entry | Absent:
        try:
            return _entry(*read_service(api, name))
        except ServiceNotFound:
            return ABSENT

    def _store(self, name: str, entry: Entry | Absent) -> None:
        with self._lock:
            held = self._held.get(name)
            if isinstance(entry, tuple) and isinstance(held, tuple) and held[0]["ID"] == entry[0]["ID"] \
                    and held[0]["Version"]["Index"] > entry[0]["Version"]["Index"]:
                return  # a newer read was stored meanwhile
            self._held[name] = entry

    def _relist(self, api: Engine) -> None:
        for name in self.names:
            generation = self._generation.get(name, 0)
            entry = self._read(api, name)
            if self._generation.get(name, 0) == generation:  # no event for it while we read: not older
                self._store(name, entry)

    def _follow_events(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            api = None
            followed = 0.0
            try:
                api = self._connect()
                self._stream = api.events({"type": ["service"]})
                self._relist(api)  # after subscribing: nothing between the listing and the stream is lost
                self._set_live(True)
                started = time.monotonic()
                for event in self._stream:
                    name = (event.get("Actor") or {}).get("Attributes", {}).get("name")
                    if name in self.names:
                        self._generation[name] = self._generation.get(name, 0) + 1
                        self._store(name, ABSENT if event.get("Action") == "remove" else self._read(api, name))
                followed = time.monotonic() - started
                if not self._stop.is_set():  # the engine (or a proxy in between) ended the stream
                    raise ConnectionError(f"the event stream ended after {followed:.1f}s")
            except Exception as err:  # noqa: BLE001 - any failure: not live, reconnect
                if not self._stop.is_set():
                    log.warning(json.dumps({"event": "swarm_events_lost", "error": f"{type(err).__name__}: {err}"[:300]}))
            self._set_live(False)
            with self._lock:
                self._held.clear()
            if self._stream is not None:
                self._stream.close()
            if api is not None:
                api.close()
            # A stream that held for a while reconnects at once; one that keeps failing backs off.
            backoff = 0.5 if followed >= 30 else min(backoff * 2, 10.0)
            self._stop.wait(backoff)

    def _refresh_tasks(self) -> None:
        api = None
        last_resync = time.monotonic()
        while not self._stop.wait(self._tasks_interval):
            try:
                api = api or self._connect()
                if not self._live:
                    continue
                if time.monotonic() - last_resync >= self._resync:
                    self._relist(api)
                    last_resync = time.monotonic()
                    continue
                with self._lock:
                    held = {n: e[0] for n, e in self._held.items() if isinstance(e, tuple)}
                for name, service in held.items():
                    tasks = service_tasks(api, service["ID"])
                    with self._lock:
                        current = self._held.get(name)
                        if isinstance(current, tuple) and current[0] is service:
                            self._held[name] = _entry(service, tasks)
            except Exception as err:  # noqa: BLE001 - the next round tries again
                log.warning(json.dumps({"event": "swarm_tasks_not_read", "error": f"{type(err).__name__}: {err}"[:300]}))
                if api is not None:
                    api.close()
                api = None
        if api is not None:
            api.close()

