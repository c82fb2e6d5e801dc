"""Process helpers for tests: the same ones the harness and the demo use, and concurrent posting."""

from __future__ import annotations

import asyncio

import aiohttp

from devkit.receiverproc import ReceiverProcess, metric_value
from devkit.waiting import free_port, wait_for

__all__ = ["ReceiverProcess", "free_port", "metric_value", "post_many", "reasons", "wait_for"]


async def post_many(receivers: list[ReceiverProcess], body: dict, each: int) -> list[tuple[int, dict]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(r: ReceiverProcess) -> tuple[int, dict]:
            async with session.post(r.url + "/webhook", json=body, headers=r.headers) as resp:
                return resp.status, await resp.json()

        return await asyncio.gather(*(one(r) for r in receivers for _ in range(each)))


def reasons(answers: list[tuple[int, dict]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status, body in answers:
        key = body["decisions"][0]["reason"] if status == 200 else f"HTTP {status}"
        counts[key] = counts.get(key, 0) + 1
    return counts

