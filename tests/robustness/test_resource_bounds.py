"""Idle and slow connections plus 1,000 concurrent requests leave health checks prompt."""

from __future__ import annotations

import asyncio
import http.client
import statistics
import threading
import time

import aiohttp
import pytest

from ..conftest import alert, payload, report
from ..processes import ReceiverProcess, metric_value
from ..swarm.conftest import spec_of

pytestmark = pytest.mark.swarm

IDLE, SLOW, CONCURRENT = 500, 100, 1000


async def test_floods_and_slow_clients_leave_the_receiver_answering_health_checks_promptly(tmp_path, docker_client, make_service):
    service = make_service(1)
    config = {
        "services": {service.name: {"min_replicas": 1, "max_replicas": 4, "scale_up_cooldown": "10m"}},
        "docker": {"timeout": "20s"}, "reconcile_interval": 0, "body_timeout": "5s",
    }
    with ReceiverProcess(tmp_path, config) as receiver:
        host, port = "127.0.0.1", receiver.port
        idle = [await asyncio.open_connection(host, port) for _ in range(IDLE)]
        slow = []
        for _ in range(SLOW):
            r, w = await asyncio.open_connection(host, port)
            w.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + receiver.token.encode() + b"\r\nContent-Length: 5000\r\n\r\n{\"v")
            await w.drain()
            slow.append((r, w))

        health: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            # Its own thread and connections: the probes measure the receiver, not this test's
            # event loop, which is busy opening a thousand connections of its own.
            while not stop.is_set():
                start = time.perf_counter()
                conn = http.client.HTTPConnection(host, port, timeout=10)
                conn.request("GET", "/-/healthy")
                assert conn.getresponse().status == 200
                conn.close()
                health.append(time.perf_counter() - start)
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async def one() -> int:
                async with session.post(receiver.url + "/webhook", json=payload(alert(service.name, "up")),
                                        headers=receiver.headers, timeout=aiohttp.ClientTimeout(total=120)) as resp:
                    await resp.read()
                    return resp.status

            started = time.perf_counter()
            statuses = await asyncio.gather(*(one() for _ in range(CONCURRENT)))
            flood_seconds = time.perf_counter() - started
        # The slow bodies were cut off with 503 (retried by Alertmanager) by now (body_timeout 5s).
        slow_answers = [await asyncio.wait_for(r.readline(), 10) for r, _ in slow]
        stop.set()
        prober.join(15)
        for _, w in idle + slow:
            w.close()
        metrics = receiver.metrics()
        assert receiver.proc.poll() is None

    counts = {s: statuses.count(s) for s in set(statuses)}
    assert set(counts) <= {200, 503}, counts
    assert counts.get(200, 0) >= 1
    assert all(line.startswith(b"HTTP/1.1 503") for line in slow_answers)
    assert spec_of(docker_client, service.name)["Mode"]["Replicated"]["Replicas"] == 2
    assert metric_value(metrics, "autoscaler_scale_events_total", service=service.name, direction="up") == 1
    assert len(health) >= 5
    assert max(health) < 1.0, f"a health check took {max(health):.3f}s"
    report(
        f"resource bounds: {IDLE} idle + {SLOW} slow connections + {CONCURRENT} concurrent webhooks in {flood_seconds:.1f}s "
        f"-> answers {counts}, slow bodies 503; /-/healthy median {statistics.median(health) * 1000:.1f} ms, "
        f"max {max(health) * 1000:.1f} ms over {len(health)} probes; 1 scale"
    )
