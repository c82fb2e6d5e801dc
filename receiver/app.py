"""HTTP: the aiohttp handlers, which translate requests into calls and results into answers,
and ``create_app``, which wires the receiver together."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .asyncswarm import AsyncSwarm
from .config import Config, parse_listen
from .domain import NodeStatus, ServiceSnapshot, Swarm, SwarmError
from .jobs import Silences, reconciling, scheduling
from .metrics import Metrics
from .models import PayloadError, parse_payload
from .scaler import Scaler
from .status import Shared, read_services, report
from .wake import Waker, listening
from .watch import SwarmCopy

log = logging.getLogger("receiver.app")

SCALER = web.AppKey("scaler", Scaler)
METRICS = web.AppKey("metrics", Metrics)
SWARM = web.AppKey("swarm", AsyncSwarm)
TOKEN = web.AppKey("token", str)
SLOTS = web.AppKey("slots", asyncio.Semaphore)
SILENCES = web.AppKey("silences", Silences)
NODE = web.AppKey("node", Shared[NodeStatus])
WAKER = web.AppKey("waker", Waker)
SERVICES_READ = web.AppKey("services_read", Shared[dict[str, ServiceSnapshot | SwarmError]])

WEBHOOK_PATH = "/webhook"
# Alertmanager retries 5xx and transport errors, never 4xx: whatever a retry can fix is a 503.
RETRY_STATUS = 503


def _error(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _authorized(request: web.Request) -> bool:
    token = request.app.get(TOKEN)
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), f"Bearer {token}".encode())


@web.middleware
async def webhook_metrics(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path != WEBHOOK_PATH:
        return await handler(request)
    metrics = request.app[METRICS]
    start = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # 405 from the router, for instance
        response = _error(exc.status, exc.reason)
    except Exception:
        log.exception("webhook failed")
        response = _error(500, "internal error; see the receiver's log")
    metrics.webhook_requests.labels(str(response.status)).inc()
    metrics.webhook_duration.observe(time.perf_counter() - start)
    return response


async def webhook(request: web.Request) -> web.Response:
    if not _authorized(request):
        return web.json_response(
            {"error": "missing or wrong bearer token"}, status=401, headers={"WWW-Authenticate": "Bearer"}
        )
    if request.content_type != "application/json":
        return _error(415, f"Content-Type must be application/json (got {request.content_type!r})")
    config = request.app[SCALER].config
    slots = request.app[SLOTS]
    try:
        if slots.locked():  # (a free slot is taken at once: no timer to set and cancel)
            async with asyncio.timeout(config.queue_timeout):
                await slots.acquire()
        else:
            await slots.acquire()
    except TimeoutError:
        return _error(RETRY_STATUS, f"busy: {config.webhook_concurrency} webhook requests already in progress", kind="busy")
    try:
        return await _scale(request, config)
    finally:
        slots.release()


async def _scale(request: web.Request, config: Config) -> web.Response:
    try:
        body = await _body(request, config.body_timeout)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"body larger than {config.max_body_bytes} bytes")
    except TimeoutError:
        # A slow sender may be a congested network: answer so that Alertmanager retries.
        return _error(RETRY_STATUS, f"body not received within {config.body_timeout}s", kind="slow_body")
    try:
        payload = parse_payload(body)
    except PayloadError as err:
        return _error(400, "invalid webhook payload", problems=err.problems)
    scaler = request.app[SCALER]
    with scaler.answering():  # the decisions' log lines and counts, and the record write, once the answer is sent
        result = await scaler.handle(payload)
        response = web.json_response(result.as_dict(), status=RETRY_STATUS if result.retry else 200)
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError:
            pass  # the sender hung up: what was decided stands, and is counted as answered
    return response


async def _body(request: web.Request, within: float) -> bytes:
    """The whole body, within ``within`` seconds unless it is all in already (no timer then)."""
    if request.content.is_eof():
        return await request.read()
    async with asyncio.timeout(within):
        return await request.read()


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def ready(request: web.Request) -> web.Response:
    try:
        node = await request.app[NODE].get()
    except SwarmError as err:
        return web.Response(status=503, text=f"not ready: Docker: {err.kind}\n")
    if node.swarm_state != "active" or not node.manager:
        return web.Response(
            status=503, text=f"not ready: this engine is not a reachable swarm manager (swarm {node.swarm_state})\n"
        )
    if not node.leader_reachable:
        log.warning(json.dumps({"event": "not_ready", "why": "no reachable leader", "docker": node.error}))
        return web.Response(status=503, text="not ready: the swarm has no reachable leader (quorum lost?)\n")
    return web.Response(text="ready\n")


async def status(request: web.Request) -> web.Response:
    read = await request.app[SERVICES_READ].get()
    return web.json_response(report(request.app[SCALER], read, request.app[SILENCES].current))


def _watching(copy: SwarmCopy, metrics: Metrics) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        copy.on_live = metrics.swarm_copy_live.set
        copy.start()
        yield
        await copy.stop()

    return ctx


def create_app(
    config: Config,
    swarm: Swarm,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    token: str | None = None,
    copy: SwarmCopy | None = None,
) -> web.Application:
    """The receiver as production runs it; tests pass a fresh registry, a clock and a swarm.
    ``copy``: the watched copy of the swarm decisions read (started and stopped with the app)."""
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    async_swarm = AsyncSwarm(swarm, config.docker.timeout, metrics.observe_docker, copy)
    scaler = Scaler(config, async_swarm, metrics, clock)
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[webhook_metrics])
    app[METRICS] = metrics
    app[SWARM] = async_swarm
    app[SCALER] = scaler
    app[SLOTS] = asyncio.Semaphore(config.webhook_concurrency)
    app[SILENCES] = Silences(list(config.services), config.alertmanager.scaling_alerts, metrics)
    # Unauthenticated reads of the swarm cost at most one Docker read per interval, whatever
    # their rate, so they cannot starve the webhook of the Docker worker.
    app[NODE] = Shared(async_swarm.node_status, config.status_cache)
    app[SERVICES_READ] = Shared(lambda: read_services(scaler), config.status_cache)
    if token:
        app[TOKEN] = token

    async def close_swarm(_: web.Application) -> AsyncIterator[None]:
        yield
        await scaler.drain()
        async_swarm.close()

    app.cleanup_ctx.append(close_swarm)
    if copy is not None:
        app.cleanup_ctx.append(_watching(copy, metrics))
    if config.reconcile_interval > 0:
        app.cleanup_ctx.append(reconciling(scaler, config.reconcile_interval))
    am = config.alertmanager
    if am.url:
        app.cleanup_ctx.append(app[SILENCES].job(am.url, am.poll_interval, am.timeout))
    if config.wake.listen is not None:
        app[WAKER] = Waker(config, scaler, app[SILENCES], metrics)
        wake_host, wake_port = parse_listen(config.wake.listen)
        app.cleanup_ctx.append(listening(app[WAKER], wake_host, wake_port, config.wake.max_body_bytes))
    if config.schedule_interval > 0:
        app.cleanup_ctx.append(scheduling(scaler, app[SILENCES], config.schedule_interval))
    app.router.add_post(WEBHOOK_PATH, webhook)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/status", status)
    return app
