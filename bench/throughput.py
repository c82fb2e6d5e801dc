"""2. Decisions that change nothing: a scale-up alert for a service inside its cooldown.

Each request is a whole decision: parse, read the service (from the watched copy: no Docker
call, no thread hop; the fake swarm's receiver reads its memory the same way), decide
``cooldown``, log, count, answer. Run against
the receiver on the real engine and against the same app on the in-memory swarm, so what
Docker costs and what the receiver costs can be told apart. The load comes from
``bench/loadgen.py`` in its own process: closed loops of 1, 10 and 100 clients, and an open
loop offering a fixed rate.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from devkit.receiverproc import ReceiverProcess

from .common import ROOT, cpu_seconds, table
from .payloads import alert, payload

CONCURRENCY = (1, 10, 100)


def engine_pid() -> int | None:
    """The dockerd behind /var/run/docker.sock, when its pidfile is where Debian puts it."""
    try:
        return int(Path("/var/run/docker.pid").read_text())
    except (OSError, ValueError):
        return None


def load(receiver: ReceiverProcess, body: bytes, *, concurrency: int | None = None, rate: float | None = None,
         duration: float, warmup: float = 1.0, expect: str = "cooldown", engine: int | None = None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(body)
        f.flush()
        mode = ["--concurrency", str(concurrency)] if concurrency else ["--rate", str(rate)]
        cpu_before = cpu_seconds(receiver.proc.pid)
        engine_before = cpu_seconds(engine) if engine else 0.0
        out = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", "--port", str(receiver.port), "--body", f.name,
             "--token", receiver.token, "--expect", expect, "--duration", str(duration), "--warmup", str(warmup), *mode],
            capture_output=True, text=True, cwd=ROOT, timeout=duration + warmup + 120,
        )
        cpu_after = cpu_seconds(receiver.proc.pid)
        engine_after = cpu_seconds(engine) if engine else 0.0
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    answered = result["answered"]  # warm-up included, like the CPU time
    result["receiver_cpu_ms_per_request"] = 1000 * (cpu_after - cpu_before) / answered if answered else float("nan")
    result["engine_cpu_ms_per_request"] = 1000 * (engine_after - engine_before) / answered if engine and answered else float("nan")
    return result


def run(receiver: ReceiverProcess, service: str, duration: float, rate: float = 1000.0, *, real: bool) -> dict[str, Any]:
    """``real``: the receiver talks to the local engine, whose CPU is counted too."""
    body = json.dumps(payload(alert(service, "up"))).encode()
    engine = engine_pid() if real else None
    closed = {c: load(receiver, body, concurrency=c, duration=duration, engine=engine) for c in CONCURRENCY}
    offered = load(receiver, body, rate=rate, duration=duration, engine=engine)
    return {"closed": closed, "open": offered}


def print_table(results: dict[str, dict[str, Any]]) -> str:
    rows = []
    for swarm, res in results.items():
        for c, r in res["closed"].items():
            rows.append(_row(swarm, f"{c} clients", r))
        o = res["open"]
        rows.append(_row(swarm, f"open loop, {o['offered_rate']:.0f}/s offered", o))
    return table(["swarm", "load", "decisions/s", "median ms", "p99 ms", "CPU ms per decision: receiver", "dockerd",
                  "answers not `cooldown`, or dropped"], rows)


def _row(swarm: str, what: str, r: dict[str, Any]) -> list[Any]:
    bad = r["unexpected"] + r.get("dropped", 0)
    engine = r.get("engine_cpu_ms_per_request", float("nan"))
    return [swarm, what, r["rate"], r["latency_ms"]["median"], r["latency_ms"]["p99"], r["receiver_cpu_ms_per_request"],
            "-" if engine != engine else engine, bad]
