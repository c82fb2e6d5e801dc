"""A small HTTP/1.1 load generator, run as its own process so it has its own core.

Closed loop (``--concurrency C``): C kept-alive connections, each sending the next request as
soon as the last answer is read. Open loop (``--rate R``): a request is due every 1/R s whether
or not earlier ones were answered, on any idle connection (new ones are opened as needed);
latency counts from when the request was due, so a receiver that falls behind shows it.

Prints one JSON object: requests, seconds, rate, latency percentiles (ms), status counts, how
many answers lacked ``--expect``, and the generator's own CPU use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from .common import summary_ms


class Target:
    def __init__(self, host: str, port: int, request: bytes, expect: bytes):
        self.host, self.port, self.request, self.expect = host, port, request, expect
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.unexpected = 0
        self.dropped = 0  # open loop: due while max_connections were all busy
        self.recording = False
        self.answered = 0  # every answer, counted or not
        self.last_answer = 0.0  # when the last answer arrived

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)

    async def exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, since: float, record: bool) -> None:
        """One request and its answer, counted (``record``) when sent or due inside the measured window."""
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await reader.readexactly(length)
        self.answered += 1
        self.last_answer = time.perf_counter()
        if record:
            self.latencies.append(self.last_answer - since)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if self.expect not in body:
                self.unexpected += 1


async def closed_loop(target: Target, concurrency: int, warmup: float, duration: float) -> float:
    """Seconds measured; the rate is the answers counted over them."""
    stop = asyncio.Event()

    async def worker() -> None:
        reader, writer = await target.connect()
        while not stop.is_set():
            await target.exchange(reader, writer, time.perf_counter(), target.recording)
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    target.recording = True
    start = time.perf_counter()
    await asyncio.sleep(duration)
    target.recording = False
    seconds = time.perf_counter() - start
    stop.set()
    await asyncio.gather(*workers)
    return seconds


async def open_loop(target: Target, rate: float, warmup: float, duration: float, max_connections: int = 1000) -> float:
    """Seconds from the first request due to the last answer; the rate is every answer over them
    (a receiver that falls behind answers after the window: its rate is what it managed)."""
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened = 0
    pending: set[asyncio.Task[None]] = set()

    async def one(due: float, record: bool) -> None:
        nonlocal opened
        if idle:
            conn = idle.pop()
        else:
            opened += 1
            conn = await target.connect()
        await target.exchange(*conn, due, record)
        idle.append(conn)

    start = time.perf_counter()
    measured_from = start + warmup
    end = measured_from + duration
    i = 0
    while True:
        due = start + i / rate
        if due >= end:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        target.recording = due >= measured_from
        if opened - len(idle) < max_connections:
            task = asyncio.create_task(one(due, target.recording))
            pending.add(task)
            task.add_done_callback(pending.discard)
        elif target.recording:
            target.dropped += 1
        i += 1
    await asyncio.gather(*pending)
    target.recording = False
    for _, writer in idle:
        writer.close()
    return target.last_answer - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", required=True, help="file holding the JSON body")
    parser.add_argument("--token", required=True)
    parser.add_argument("--expect", default="", help="text every answer must hold")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--concurrency", type=int)
    group.add_argument("--rate", type=float)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    args = parser.parse_args()
    body = Path(args.body).read_bytes()
    request = (
        f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {args.token}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    target = Target("127.0.0.1", args.port, request, args.expect.encode())
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    if args.concurrency:
        seconds = asyncio.run(closed_loop(target, args.concurrency, args.warmup, args.duration))
        rate = len(target.latencies) / seconds
    else:
        seconds = asyncio.run(open_loop(target, args.rate, args.warmup, args.duration))
        rate = target.answered / seconds
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    lat = summary_ms(target.latencies)
    json.dump({
        "concurrency": args.concurrency, "offered_rate": args.rate,
        "requests": len(target.latencies), "answered": target.answered, "seconds": seconds, "rate": rate,
        "latency_ms": lat, "statuses": target.statuses, "unexpected": target.unexpected, "dropped": target.dropped,
        "generator_cpu_seconds": cpu,
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
