"""1. Webhook-to-scale latency on the real engine, next to the engine's floor and the docker SDK.

Four ways to make the same change (one replica up or down between 1 and 2) take turns, in a
shuffled order each round, each on its own stand-in service; before every change the engine
is quiet (every service runs the tasks it asks for), as it is when alerts come minutes apart:

- ``engine floor``: one inspect and one update over a kept-alive connection to the socket,
  raw HTTP, no SDK: the least any client can do;
- ``engine, receiver's calls``: raw HTTP again, but the calls the receiver makes: the service as
  its watched copy holds it, with its tasks (read before the clock starts, as the copy has them
  already: a scale-up counts the tasks on their way from it), the update with the state label; then
  the record (list the service's configs, create one, remove the older one), which the receiver
  writes after answering: timed as parts of its own, not in the answer's total;
- ``docker SDK``: ``client.services.get(name).scale(n)`` on a kept docker-py client;
- ``receiver``: POST /webhook (an up or down alert) to the receiver process, over a kept-alive
  connection; it answers once the update is accepted, then writes the record;
- ``receiver through the docker gate``: the same, to a second receiver process whose Docker is
  the docker gate (``autoscaler gate`` on loopback, in front of the same socket), as in the
  stack; the difference of the two medians is what the gate adds.

For each change: the time until the answer (the change is accepted by the engine), and, for a
scale-up, the time until the new task runs (the engine's own work that follows).
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import docker

from devkit.receiverproc import ReceiverProcess, metric_value
from receiver.record_store import RECORD_LABEL, RECORD_PREFIX, RECORD_VERSION_LABEL
from receiver.state import STATE_LABELS, encode_time

from .common import RawEngine, summary_ms, table
from .payloads import alert, payload

DOCKER_OPS = ("inspect", "update", "write_record")


@dataclass
class Method:
    name: str
    service: Any
    change: Callable[[int], dict[str, float]]  # replicas -> seconds per part (at least "total")
    replicas: int = 1
    answers: list[float] = field(default_factory=list)
    to_running: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)


class _Timer:
    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self._start = time.perf_counter()
        self._last = self._start

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.parts[part] = self.parts.get(part, 0.0) + now - self._last
        self._last = now

    def done(self) -> dict[str, float]:
        self.parts["total"] = time.perf_counter() - self._start
        return self.parts


def engine_floor(engine: RawEngine, name: str) -> Callable[[int], dict[str, float]]:
    def change(replicas: int) -> dict[str, float]:
        t = _Timer()
        service = engine.inspect(name)
        t.lap("inspect")
        spec = service["Spec"]
        spec["Mode"]["Replicated"]["Replicas"] = replicas
        engine.update(service, spec)
        t.lap("update")
        return t.done()

    return change


def receiver_read(engine: RawEngine, name: str) -> dict[str, Any]:
    """What a read of the service from Docker asks (``DockerSwarm.inspect``): the service, then its
    tasks (the running count). The receiver makes it only when its copy cannot answer."""
    service = engine.inspect(name)
    engine.tasks(service["ID"])
    return service


def engine_receiver_calls(engine: RawEngine, name: str) -> Callable[[int], dict[str, float]]:
    """The calls the receiver makes for one change, over raw HTTP: the update (the answer), then
    the record (after the answer: its parts are not in "total")."""
    def change(replicas: int) -> dict[str, float]:
        service = engine.inspect(name)  # the watched copy holds it: not a call on the receiver's path
        t = _Timer()
        spec = service["Spec"]
        direction = "up" if replicas > spec["Mode"]["Replicated"]["Replicas"] else "down"
        now = time.time()
        spec["Mode"]["Replicated"]["Replicas"] = replicas
        spec["Labels"] = {**spec.get("Labels", {}), STATE_LABELS[direction]: encode_time(now)}
        engine.update(service, spec)
        t.lap("update")
        parts = t.done()
        after = _Timer()
        version = str(service["Version"]["Index"] + 1)  # as the record store: the read version + 1
        configs = engine.request("GET", "/configs", params={"filters": json.dumps({"label": [f"{RECORD_LABEL}={name}"]})})
        after.lap("record: list configs")
        record = {"service": name, "replicas": replicas, "labels": spec["Labels"], "at": now, "version": int(version)}
        engine.request("POST", "/configs/create", {
            "Name": f"{RECORD_PREFIX}bench-{version}", "Labels": {RECORD_LABEL: name, RECORD_VERSION_LABEL: version},
            "Data": base64.b64encode(json.dumps(record, sort_keys=True).encode()).decode(),
        })
        after.lap("record: create config")
        for old in configs:
            engine.request("DELETE", f"/configs/{old['ID']}")
        after.lap("record: remove old config")
        return {**parts, **after.parts}

    return change


def docker_sdk(client: docker.DockerClient, name: str) -> Callable[[int], dict[str, float]]:
    def change(replicas: int) -> dict[str, float]:
        t = _Timer()
        client.services.get(name).scale(replicas)
        return t.done()

    return change


def receiver_webhook(receiver: ReceiverProcess, name: str) -> Callable[[int], dict[str, float]]:
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=60)
    bodies = {d: json.dumps(payload(alert(name, d))).encode() for d in ("up", "down")}
    state = {"replicas": 1}

    def change(replicas: int) -> dict[str, float]:
        direction = "up" if replicas > state["replicas"] else "down"
        t = _Timer()
        conn.request("POST", "/webhook", body=bodies[direction], headers=receiver.headers)
        resp = conn.getresponse()
        answer = json.loads(resp.read())
        parts = t.done()
        reason = answer["decisions"][0]["reason"] if resp.status == 200 else answer
        if reason not in ("scaled_up", "scaled_down"):
            raise RuntimeError(f"the receiver did not scale {name}: {resp.status} {answer}")
        state["replicas"] = replicas
        return parts

    return change


def read_costs(name: str, reads: int = 300) -> dict[str, dict[str, float]]:
    """One read of a service (inspect + task list) in this process, three ways: raw HTTP,
    the receiver's adapter (``DockerSwarm.inspect``, its own raw HTTP client) called directly, and the same
    through ``AsyncSwarm`` (its worker thread and timeout) from an event loop. Wall and CPU
    time per read: the CPU is this process's, so it is what the client side costs."""
    import asyncio

    from receiver.asyncswarm import AsyncSwarm
    from receiver.dockerapi import DockerSwarm

    engine = RawEngine()
    adapter = DockerSwarm(None, 20)
    wrapped = AsyncSwarm(adapter, 20)

    def raw_read() -> None:
        receiver_read(engine, name)

    async def async_reads() -> list[float]:
        walls = []
        for _ in range(reads):
            t = time.perf_counter()
            await wrapped.inspect(name)
            walls.append(time.perf_counter() - t)
        return walls

    def timed(fn: Callable[[], None]) -> tuple[list[float], float]:
        fn()  # warm up
        walls = []
        cpu = time.process_time()
        for _ in range(reads):
            t = time.perf_counter()
            fn()
            walls.append(time.perf_counter() - t)
        return walls, (time.process_time() - cpu) / reads

    try:
        out = {}
        for label, fn in (("raw HTTP", raw_read), ("the receiver's adapter (DockerSwarm.inspect)", lambda: adapter.inspect(name))):
            walls, cpu = timed(fn)
            out[label] = {"median_ms": summary_ms(walls)["median"], "cpu_ms": 1000 * cpu}
        cpu = time.process_time()
        walls = asyncio.run(async_reads())
        out["the adapter through AsyncSwarm (as the receiver calls it)"] = {
            "median_ms": summary_ms(walls)["median"], "cpu_ms": 1000 * (time.process_time() - cpu) / reads}
        return out
    finally:
        engine.close()
        wrapped.close()


def _docker_means(before: str, after: str) -> dict[str, dict[str, float]]:
    """Per Docker operation between two scrapes: calls, mean ms per call and per webhook (a change);
    and the webhook answer's mean."""
    def delta(metric: str, **labels: str) -> float:
        return metric_value(after, metric, **labels) - metric_value(before, metric, **labels)

    changes = delta("autoscaler_webhook_request_duration_seconds_count")
    out = {"webhook": {"count": changes, "mean_ms": 1000 * delta("autoscaler_webhook_request_duration_seconds_sum") / changes
                       if changes else float("nan")}}
    for op in DOCKER_OPS:
        count = delta("autoscaler_docker_request_duration_seconds_count", operation=op)
        total = delta("autoscaler_docker_request_duration_seconds_sum", operation=op)
        out[op] = {"count": count, "mean_ms": 1000 * total / count if count else float("nan"),
                   "per_change_ms": 1000 * total / changes if changes else float("nan")}
    return out


GATED = "receiver through the docker gate"


def run(receiver: ReceiverProcess, services: dict[str, Any], rounds: int, warmup: int = 3, seed: int = 1,
        gated: ReceiverProcess | None = None) -> dict[str, Any]:
    """``services``: method key -> a stand-in service at 1 replica (the receiver's is configured
    with zero cooldowns, 1..2 replicas); ``gated``, a receiver behind the docker gate, scales
    ``services["gate"]``."""
    engine = RawEngine()
    poller = RawEngine()
    client = docker.from_env(timeout=60)
    methods = [
        Method("engine floor", services["floor"], engine_floor(engine, services["floor"].name)),
        Method("engine, receiver's calls", services["calls"], engine_receiver_calls(engine, services["calls"].name)),
        Method("docker SDK", services["sdk"], docker_sdk(client, services["sdk"].name)),
        Method("receiver", services["receiver"], receiver_webhook(receiver, services["receiver"].name)),
    ]
    if gated is not None:
        methods.append(Method(GATED, services["gate"], receiver_webhook(gated, services["gate"].name)))
    rng = random.Random(seed)
    before = ""
    try:
        for round_no in range(warmup + rounds):
            if round_no == warmup:
                before = receiver.metrics()
            order = methods[:]
            rng.shuffle(order)
            for m in order:
                target = 2 if m.replicas == 1 else 1
                start = time.perf_counter()
                parts = m.change(target)
                while poller.running(m.service.id) != target:
                    time.sleep(0.005)
                converged = time.perf_counter() - start
                m.replicas = target
                if round_no >= warmup:
                    m.answers.append(parts["total"])
                    if target == 2:  # a removed task leaves the running list at once: only a start takes time
                        m.to_running.append(converged)
                    for part, seconds in parts.items():
                        m.parts.setdefault(part, []).append(seconds)
                time.sleep(0.05)
        after = receiver.metrics()
    finally:
        reconnects = engine.conn.connects
        engine.close()
        poller.close()
        client.close()
    floor = next(m for m in methods if m.name == "engine floor")
    floor_median = summary_ms(floor.answers)["median"]
    results = {
        "rounds": rounds,
        "engine_connections": reconnects,
        "methods": {
            m.name: {
                "answer": summary_ms(m.answers),
                "to_running": summary_ms(m.to_running),
                # per change: a part only some changes have counts 0 in the others
                "parts_mean_ms": {p: 1000 * sum(v) / len(m.answers) for p, v in m.parts.items()},
                "parts_median_ms": {p: summary_ms(v)["median"] for p, v in m.parts.items()},
                "ratio_to_floor": summary_ms(m.answers)["median"] / floor_median,
                "samples_ms": [round(s * 1000, 3) for s in m.answers],
            }
            for m in methods
        },
        "receiver_metrics": _docker_means(before, after),
        "read_costs": read_costs(services["floor"].name),
    }
    if gated is not None:
        by = results["methods"]
        results["gate_added_ms"] = {q: by[GATED]["answer"][q] - by["receiver"]["answer"][q] for q in ("median", "p90", "p99")}
    return results


def print_tables(results: dict[str, Any]) -> str:
    rows = []
    for name, m in results["methods"].items():
        a, r = m["answer"], m["to_running"]
        rows.append([name, a["median"], a["p90"], a["p99"], f"{m['ratio_to_floor']:.2f}×", r["median"]])
    out = [table(["change made by", "median ms", "p90 ms", "p99 ms", "median / floor", "scale-up: new task running, median ms"], rows)]
    out.append("")
    out.append(breakdown_table(results))
    out.append("")
    rows = [[k, v["median_ms"], v["cpu_ms"]] for k, v in results["read_costs"].items()]
    out.append(table(["one read of a service (inspect + task list), in one process", "median ms", "client CPU ms"], rows))
    return "\n".join(out)


def breakdown_table(results: dict[str, Any]) -> str:
    """Where the receiver's time goes (means per change), next to the same calls made raw. The
    record is written after the answer, so it is shown but not part of the answer's total."""
    raw = results["methods"]["engine, receiver's calls"]["parts_mean_ms"]
    rec = results["receiver_metrics"]
    client_mean = results["methods"]["receiver"]["answer"]["mean"]
    raw_record = sum(v for k, v in raw.items() if k.startswith("record"))
    answer_docker = sum(rec[op]["per_change_ms"] for op in ("inspect", "update"))
    rows = [
        ["read the service and its tasks from Docker (only when the copy cannot answer)", 0.0,
         rec["inspect"]["per_change_ms"]],
        ["update (replicas + state label)", raw["update"], rec["update"]["per_change_ms"]],
        ["receiver's own work (parse, decide, log, metrics)", "-", rec["webhook"]["mean_ms"] - answer_docker],
        ["HTTP to and from the receiver", "-", client_mean - rec["webhook"]["mean_ms"]],
        ["total: the answer", raw["total"], client_mean],
        ["after the answer: the record (list configs, create one, remove old)", raw_record,
         rec["write_record"]["per_change_ms"]],
    ]
    return table(["part (mean ms per change)", "raw HTTP to the engine", "in the receiver (its /metrics)"], rows)
