"""6. Events to copy: how soon a change made outside (``docker service scale``) is visible to
decisions, through the receiver's watched copy of the swarm (receiver/watch.py)."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from receiver.asyncengine import AsyncEngine
from receiver.dockerapi import Target
from receiver.watch import SwarmCopy

from .common import BenchServices, table


def run(services: BenchServices, rounds: int) -> dict[str, Any]:
    service = services.create("watch", 1)
    seen_ms = asyncio.run(_changes(service, rounds))
    ordered = sorted(seen_ms)
    return {"rounds": rounds, "median_ms": statistics.median(ordered), "p90_ms": ordered[int(0.9 * (len(ordered) - 1))],
            "max_ms": ordered[-1], "min_ms": ordered[0]}


async def _changes(service: Any, rounds: int) -> list[float]:
    """The copy on this loop, as in the receiver; each change made by an update on a connection
    of its own, then the time until the copy holds it."""
    copy = SwarmCopy([service.name], None, timeout=20)
    copy.start()
    api = AsyncEngine(Target.of(None))
    try:
        for _ in range(3000):  # up to 30 s for the first listing
            if copy.get(service.name) is not None:
                break
            await asyncio.sleep(0.01)
        seen_ms: list[float] = []
        for i in range(rounds):
            replicas = 2 if i % 2 == 0 else 1
            inspected = await api.call("GET", f"/services/{service.id}")
            spec = inspected["Spec"]
            spec["Mode"] = {"Replicated": {"Replicas": replicas}}
            start = time.perf_counter()
            await api.call("POST", f"/services/{service.id}/update", {"version": inspected["Version"]["Index"]}, spec)
            while True:
                held = copy.get(service.name)
                if held is not None and getattr(held, "replicas", None) == replicas:
                    break
                if time.perf_counter() - start > 10:
                    raise RuntimeError(f"the copy did not see {service.name} at {replicas} replicas within 10 s")
                await asyncio.sleep(0.0005)
            seen_ms.append((time.perf_counter() - start) * 1000)
    finally:
        await copy.stop()
        api.close()
    return seen_ms


def print_table(r: dict[str, Any]) -> str:
    return table(["changes made outside (docker service update of replicas)", "median ms", "p90 ms", "min ms", "max ms"],
                 [[r["rounds"], r["median_ms"], r["p90_ms"], r["min_ms"], r["max_ms"]]])
