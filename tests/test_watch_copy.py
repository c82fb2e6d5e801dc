"""The watched copy's bookkeeping without an engine: what a read may store after our own update or
after the stream dropped (the real engine's part is tests/swarm/test_watch.py)."""

from __future__ import annotations

import time

from receiver.watch import ABSENT, SwarmCopy, _entry


def service(version: int, service_id: str = "id1", replicas: int = 1) -> dict:
    return {"ID": service_id, "Version": {"Index": version},
            "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": replicas}}}}


def live_copy() -> SwarmCopy:
    copy = SwarmCopy(["web"], "unix:///nonexistent.sock", tasks_interval=1.0)
    copy._live = True
    return copy


async def test_a_read_of_the_version_our_update_made_stale_is_not_stored():
    copy = live_copy()
    copy._store("web", _entry(service(5), [], time.monotonic()), copy._epoch)
    copy.writing("web")
    copy.written("web", "id1", 5)  # our update of version 5 is answered: 5 is stale
    assert copy.get("web") is None
    copy._store("web", _entry(service(5), [], time.monotonic()), copy._epoch)  # a read begun before it
    assert copy.get("web") is None  # not served: decisions read Docker
    copy._store("web", _entry(service(6, replicas=2), [], time.monotonic()), copy._epoch)
    assert copy.get("web").replicas == 2
    copy._store("web", _entry(service(5, service_id="id2"), [], time.monotonic()), copy._epoch)
    assert copy.get("web").id == "id2"  # a service created again under the name is not stale


async def test_a_read_begun_before_the_stream_dropped_is_not_stored_after_it():
    copy = live_copy()
    begun = copy._epoch
    copy._epoch += 1  # the stream dropped (and reconnected) meanwhile
    copy._store("web", ABSENT, copy._epoch)  # the new connection's listing: the service is gone
    copy._store("web", _entry(service(7), [], time.monotonic()), begun)
    assert copy.get("web") is ABSENT


async def test_entries_whose_tasks_are_older_than_three_re_lists_are_not_served():
    copy = live_copy()
    copy._store("web", _entry(service(5), [], time.monotonic() - 2.9), copy._epoch)
    assert copy.get("web") is not None
    copy._store("web", _entry(service(6), [], time.monotonic() - 3.1), copy._epoch)
    assert copy.get("web") is None
    copy._live = False
    copy._store("web", _entry(service(7), [], time.monotonic()), copy._epoch)
    assert copy.get("web") is None  # nothing is served while the stream is down
