"""What ``autoscaler doctor`` reads from the live deployment: Prometheus (rules API and instant
queries), Alertmanager (live configuration and silences, through the one client), the webhook
(a probe that changes nothing) and Docker (a read, and an update that the engine must refuse)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import yaml

from ..alertmanager import Alertmanager, AlertmanagerError
from ..dockerapi import DockerSwarm
from ..domain import ServiceSnapshot, SwarmError
from . import signals
from .links import WebhookProbe


class CannotRun(Exception):
    """A fact the doctor needs cannot be read (an unreachable URL, an answer it cannot parse)."""


@dataclass(frozen=True)
class Facts:
    rules: dict[str, Any]  # data of GET /api/v1/rules
    values: dict[str, dict[str, float]]  # query -> service -> value
    am_config: dict[str, Any]  # the live Alertmanager configuration
    silences: list[dict[str, Any]]
    webhook: WebhookProbe


async def _prometheus(session: aiohttp.ClientSession, base: str, path: str, params: dict[str, str]) -> Any:
    url = base.rstrip("/") + path
    try:
        async with session.get(url, params=params) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise CannotRun(f"Prometheus GET {url}: HTTP {resp.status}: {text[:200]}")
            answer = json.loads(text)
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        raise CannotRun(f"Prometheus GET {url}: {type(err).__name__}: {err}") from None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise CannotRun(f"Prometheus GET {url}: not a successful API answer")
    return answer["data"]


async def _query(session: aiohttp.ClientSession, base: str, query: str) -> dict[str, float]:
    data = await _prometheus(session, base, "/api/v1/query", {"query": query})
    return {str(s["metric"].get("service", "")): float(s["value"][1]) for s in data.get("result") or []}


async def _webhook(session: aiohttp.ClientSession, url: str, token: str | None) -> WebhookProbe:
    """Two notifications of no alert (they ask for nothing): with the configured token, and without one."""
    body = {"version": "4", "status": "resolved", "alerts": [], "receiver": "autoscaler-doctor",
            "groupKey": "autoscaler-doctor", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}}

    async def post(bearer: str | None) -> int:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        async with session.post(url, json=body, headers=headers) as resp:
            return resp.status

    try:
        with_token = await post(token)
        without = await post(None) if token else None
    except (aiohttp.ClientError, TimeoutError) as err:
        return WebhookProbe(url, None, None, f"{type(err).__name__}: {err}")
    return WebhookProbe(url, with_token, without)


async def gather(prometheus: str, alertmanager: str, webhook_url: str, token: str | None, seconds: float) -> Facts:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session:
        rules = await _prometheus(session, prometheus, "/api/v1/rules", {})
        wanted = signals.queries(signals.rules_of(rules))
        answers = await asyncio.gather(*(_query(session, prometheus, q) for q in wanted))
        am = Alertmanager(session, alertmanager, seconds)
        try:
            status, silences = await am.status(), await am.silences()
        except AlertmanagerError as err:
            raise CannotRun(f"Alertmanager {err}") from None
        try:
            config = yaml.safe_load(((status.get("config") or {}).get("original")) or "")
        except yaml.YAMLError as err:
            raise CannotRun(f"Alertmanager GET /api/v2/status: config.original is not YAML: {err}") from None
        if not isinstance(config, dict) or "route" not in config:
            raise CannotRun("Alertmanager GET /api/v2/status: no configuration with a route in config.original")
        probe = await _webhook(session, webhook_url, token)
    return Facts(rules, dict(zip(wanted, answers, strict=True)), config, silences, probe)


def read_service(swarm: DockerSwarm, name: str) -> tuple[ServiceSnapshot | SwarmError, SwarmError | None]:
    """The service as the receiver reads it, and what a no-op update with a stale version raised.

    The update sends the spec as read with the replicas unchanged and the version before the one
    read: an access layer that refuses by what changes answers 403; otherwise the engine refuses
    it as out of sequence, and nothing changes (the version index stays). None: it was accepted.
    """
    try:
        snapshot = swarm.inspect(name)
    except SwarmError as err:
        return err, None
    if snapshot.mode != "replicated":
        return snapshot, None  # the update would set a replica count: never sent to such a service
    stale = dataclasses.replace(snapshot, version=max(snapshot.version - 1, 0))
    try:
        swarm.set_replicas(stale, snapshot.replicas, {})
    except SwarmError as err:
        return snapshot, err
    return snapshot, None
