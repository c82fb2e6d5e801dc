"""HTTP: translate requests into calls on the scaler and results into answers. Nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .config import Config
from .metrics import Metrics
from .models import PayloadError, parse_payload
from .scaler import Scaler
from .swarm import AsyncSwarm, Swarm, SwarmError

log = logging.getLogger("receiver.app")

SCALER = web.AppKey("scaler", Scaler)
METRICS = web.AppKey("metrics", Metrics)
SWARM = web.AppKey("swarm", AsyncSwarm)
TOKEN = web.AppKey("token", str)
SLOTS = web.AppKey("slots", asyncio.Semaphore)

WEBHOOK_PATH = "/webhook"


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
        async with asyncio.timeout(config.queue_timeout):
            await slots.acquire()
    except TimeoutError:
        return _error(503, f"busy: {config.webhook_concurrency} webhook requests already in progress", kind="busy")
    try:
        return await _scale(request, config)
    finally:
        slots.release()


async def _scale(request: web.Request, config: Config) -> web.Response:
    try:
        async with asyncio.timeout(config.body_timeout):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"body larger than {config.max_body_bytes} bytes")
    except TimeoutError:
        return _error(408, f"body not received within {config.body_timeout}s")
    try:
        payload = parse_payload(body)
    except PayloadError as err:
        return _error(400, "invalid webhook payload", problems=err.problems)
    try:
        result = await request.app[SCALER].handle(payload)
    except SwarmError as err:
        return _error(503, f"Docker: {err}", kind=err.kind)
    return web.json_response(result.as_dict())


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def ready(request: web.Request) -> web.Response:
    try:
        node = await request.app[SWARM].node_status()
    except SwarmError as err:
        return web.Response(status=503, text=f"not ready: Docker: {err}\n")
    if node.swarm_state != "active" or not node.manager:
        return web.Response(
            status=503, text=f"not ready: this engine is not a reachable swarm manager (swarm {node.swarm_state})\n"
        )
    if not node.leader_reachable:
        return web.Response(status=503, text=f"not ready: the swarm has no reachable leader (quorum lost?): {node.error}\n")
    return web.Response(text="ready\n")


async def status(request: web.Request) -> web.Response:
    scaler = request.app[SCALER]
    return web.json_response({"dry_run": scaler.config.dry_run, "services": await scaler.status()})


def _polling_silences(scaler: Scaler, url: str, interval: float, timeout: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """Read Alertmanager's silences every ``interval``, so /status and the metrics show freezes."""

    async def poll(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                async with session.get(f"{url.rstrip('/')}/api/v2/silences", timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    resp.raise_for_status()
                    scaler.set_silences(await resp.json())
                scaler.metrics.alertmanager_polls.labels("ok").inc()
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                scaler.metrics.alertmanager_polls.labels("error").inc()
                log.warning(json.dumps({"event": "silences_not_read", "alertmanager": url, "error": str(err)}))
            await asyncio.sleep(interval)

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            task = asyncio.create_task(poll(session), name="silences")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return ctx


def _reconciling(scaler: Scaler, interval: float) -> Callable[[web.Application], AsyncIterator[None]]:
    async def loop() -> None:
        while True:
            await scaler.reconcile()
            await asyncio.sleep(interval)

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(loop(), name="reconcile")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


def create_app(
    config: Config,
    swarm: Swarm,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    token: str | None = None,
) -> web.Application:
    """The receiver as production runs it; tests pass a fresh registry, a clock and a swarm."""
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    async_swarm = AsyncSwarm(swarm, config.docker.timeout, metrics.observe_docker)
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[webhook_metrics])
    app[METRICS] = metrics
    app[SWARM] = async_swarm
    app[SCALER] = Scaler(config, async_swarm, metrics, clock)
    app[SLOTS] = asyncio.Semaphore(config.webhook_concurrency)
    if token:
        app[TOKEN] = token

    async def close_swarm(_: web.Application) -> AsyncIterator[None]:
        yield
        await app[SCALER].drain()
        async_swarm.close()

    app.cleanup_ctx.append(close_swarm)
    if config.reconcile_interval > 0:
        app.cleanup_ctx.append(_reconciling(app[SCALER], config.reconcile_interval))
    am = config.alertmanager
    if am.url:
        app.cleanup_ctx.append(_polling_silences(app[SCALER], am.url, am.poll_interval, am.timeout))
    app.router.add_post(WEBHOOK_PATH, webhook)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/status", status)
    return app
