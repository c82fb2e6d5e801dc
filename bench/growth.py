"""3. Growth: one payload of 1, 10, 100 or 1,000 alerts dealt over 1, 10 or 100 services.

Every alert asks a configured service, inside its cooldown, to scale up: the receiver parses
every alert, merges them into one request per service, reads each service once and decides
``cooldown`` for each. Payloads are sent one at a time over a kept-alive connection, repeated
until enough time has passed for a stable median.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from devkit.receiverproc import ReceiverProcess

from .common import summary_ms, table
from .payloads import spread

ALERTS = (1, 10, 100, 1000)
SERVICES = (1, 10, 100)


def time_payloads(receiver: ReceiverProcess, services: list[str], alerts: int, budget: float,
                  min_reps: int = 5, max_reps: int = 300) -> dict[str, Any]:
    body = json.dumps(spread(alerts, services)).encode()
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=120)
    times: list[float] = []
    start = time.perf_counter()
    try:
        while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget):
            t0 = time.perf_counter()
            conn.request("POST", "/webhook", body=body, headers=receiver.headers)
            resp = conn.getresponse()
            answer = json.loads(resp.read())
            times.append(time.perf_counter() - t0)
            if resp.status != 200 or len(answer["decisions"]) != len(services) or \
                    any(d["reason"] != "cooldown" for d in answer["decisions"]):
                raise RuntimeError(f"unexpected answer for {alerts} alerts over {len(services)} services: {str(answer)[:300]}")
    finally:
        conn.close()
    return {"alerts": alerts, "services": len(services), "bytes": len(body), **summary_ms(times)}


def run(receiver: ReceiverProcess, names: list[str], budget: float) -> list[dict[str, Any]]:
    """Every (services, alerts) pair with at least one alert per service."""
    time_payloads(receiver, names[:1], 10, 0.2)  # warm up
    cells = []
    for n_services in SERVICES:
        if n_services > len(names):
            continue
        for n_alerts in ALERTS:
            if n_alerts >= n_services:
                cells.append(time_payloads(receiver, names[:n_services], n_alerts, budget))
    return cells


def print_table(results: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    for swarm, cells in results.items():
        for c in cells:
            rows.append([swarm, c["services"], c["alerts"], _size(c["bytes"]), c["median"], c["p90"],
                         1000 * c["median"] / c["alerts"], c["n"]])
    return table(["swarm", "services", "alerts", "payload", "median ms", "p90 ms", "µs per alert", "payloads sent"], rows)


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 10 * 1024 else f"{n / 1024:,.0f} KiB"
