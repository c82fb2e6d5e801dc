"""Wake on request: the listener behind Traefik's fallback route of a service at 0 replicas.

With no task, Traefik's Swarm provider drops the service's route and the fallback route sends
the request here, naming the service in a header Traefik sets. The request is held while the
service is woken through the one decision path (``Scaler.wake``: ``woken``, or refused when
paused, frozen or in a rolling update), until a task runs (Swarm says so once its health check,
which loads the model, passes) and the service answers its health path; then it is passed on
and the answer streamed back. Bounded by ``max_pending`` and ``wake_timeout``; health checkers
never wake a service; a stopping receiver answers what it holds at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from .config import Config, WakeService
from .domain import Outcome, Reason, ServiceNotFound, SwarmError
from .jobs import Silences
from .metrics import Metrics
from .relay import RelayCut, RelayFailed, relay
from .scaler import Scaler

log = logging.getLogger("receiver.wake")

_DOCKER_RETRY = 1.0  # seconds between wake attempts after a transient Docker failure
_POLL = 0.25  # seconds between looks at the service's tasks and health path


class NotWoken(Exception):
    """The service will not be up for the held requests: why, for their 503."""

    def __init__(self, reason: str, message: str, details: dict[str, object] | None = None):
        super().__init__(message)
        self.reason = reason
        self.details = details or {}


@dataclass(frozen=True)
class Up:
    """When (monotonic) each step of a wake ended, and the decision taken."""

    decided: float
    running: float
    ready: float
    outcome: Outcome


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    while True:
        if await check():
            return
        await asyncio.sleep(_POLL)


def _retrieved(task: asyncio.Task[Up]) -> None:
    if not task.cancelled():
        task.exception()  # every waiter may have gone: the failure is theirs, not asyncio's to log


class Waker:
    def __init__(self, config: Config, scaler: Scaler, silences: Silences, metrics: Metrics):
        self.config = config
        self.scaler = scaler
        self.silences = silences
        self.metrics = metrics
        self.pending: dict[str, int] = {}
        self._waking: dict[str, asyncio.Task[Up]] = {}
        self._closing = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None


    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        header = self.config.wake.header
        name = request.headers.get(header, "")
        policy = self.config.services.get(name)
        if policy is None or policy.wake is None:
            self.metrics.wake_requests.labels("", "unknown_service").inc()
            # The fallback route names the service: a wrong name is the gateway's configuration.
            return web.json_response({"error": f"no service to wake: {name or '(none)'} is not configured with `wake`",
                                      "field": header}, status=502)
        wake = policy.wake
        agent = request.headers.get("User-Agent", "")
        checker = next((c for c in self.config.wake.health_checkers if c.lower() in agent.lower()), None)
        if checker is not None:
            return self._refuse(name, "health_checker", f"{name} has no replica; requests from health checkers "
                                f"({checker!r} in the User-Agent) do not wake it")
        if self._closing.is_set():
            return self._refuse(name, "stopping", "the receiver is stopping; try again")
        if self.pending.get(name, 0) >= wake.max_pending:
            return self._refuse(name, "busy", f"{name} is waking and already holds {wake.max_pending} requests "
                                "(max_pending)")
        held = True
        self._hold(name, +1)
        try:
            # The wake starts from the headers; the body comes meanwhile, within body_timeout.
            waiting = asyncio.create_task(self._until_up(name, wake, arrived))
            try:
                async with asyncio.timeout(self.config.body_timeout):
                    body = await request.read()
            except TimeoutError:
                waiting.cancel()  # this request's wait only: the shared wake goes on
                self.metrics.wake_requests.labels(name, "slow_body").inc()
                return web.json_response({"error": f"body not received within {self.config.body_timeout:g}s",
                                          "service": name, "reason": "slow_body"}, status=408)
            except BaseException:
                waiting.cancel()
                raise
            try:
                up = await waiting
            except NotWoken as err:
                return self._refuse(name, err.reason, str(err), err.details)
            self.metrics.wake_seconds.labels(name).observe(up.ready - arrived)
            held = False
            self._hold(name, -1)  # passed on: no longer held (max_pending bounds the waiting ones)
            return await self._forward(request, body, name, wake, arrived, up)
        finally:
            if held:
                self._hold(name, -1)

    def _hold(self, name: str, change: int) -> None:
        self.pending[name] = self.pending.get(name, 0) + change
        self.metrics.wake_pending.labels(name).set(self.pending[name])

    def _refuse(self, name: str, result: str, message: str, details: dict[str, object] | None = None) -> web.Response:
        self.metrics.wake_requests.labels(name, result).inc()
        body: dict[str, object] = {"error": message, "service": name, "reason": result}
        if details:
            body["details"] = details
        retry = f"{self.config.wake.retry_after:.0f}"
        return web.json_response(body, status=503, headers={"Retry-After": retry})


    async def _until_up(self, name: str, wake: WakeService, arrived: float) -> Up:
        """Joins the service's wake (or starts one), within this request's own wake_timeout."""
        while True:
            if self._closing.is_set():
                raise NotWoken("stopping", "the receiver is stopping; try again")
            task = self._waking.get(name)
            if task is None or task.done():
                task = asyncio.create_task(self._wake(name, wake), name=f"wake {name}")
                task.add_done_callback(_retrieved)
                self._waking[name] = task
            closing = asyncio.create_task(self._closing.wait())
            remaining = max(0.0, arrived + wake.wake_timeout - time.monotonic())
            try:
                done, _ = await asyncio.wait({task, closing}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
            if closing in done:
                raise NotWoken("stopping", "the receiver is stopping; try again")
            if task not in done:
                break
            error = task.exception()
            if isinstance(error, NotWoken) and error.reason == "wake_timeout" and \
                    time.monotonic() < arrived + wake.wake_timeout:
                continue  # an earlier request's wake ran out of time, this request's has not: again
            return task.result()
        raise NotWoken("wake_timeout", f"{name} was not up within wake_timeout ({wake.wake_timeout:g}s)")

    async def _wake(self, name: str, wake: WakeService) -> Up:
        started = time.monotonic()
        try:
            async with asyncio.timeout(wake.wake_timeout):
                outcome = await self._decide(name)
                decided = time.monotonic()
                await _until(lambda: self._running(name))  # Swarm says running once the health check passes
                running = time.monotonic()
                await _until(lambda: self._healthy(wake))
                up = Up(decided, running, time.monotonic(), outcome)
        except TimeoutError:
            raise NotWoken("wake_timeout", f"{name} was not up within wake_timeout ({wake.wake_timeout:g}s)") from None
        log.info(json.dumps({"event": "woken" if outcome.reason is Reason.WOKEN else "awake", "service": name,
                             "decision_ms": round((up.decided - started) * 1000, 1),
                             "task_running_s": round(up.running - up.decided, 3),
                             "health_s": round(up.ready - up.running, 3)}))
        return up

    async def _decide(self, name: str) -> Outcome:
        while True:
            await self.silences.refresh()
            if not self.silences.known:
                raise NotWoken("silences_unknown", f"{name} is not woken: Alertmanager's silences could not be "
                               "read yet (a freeze may hold it)")
            outcome = await self.scaler.wake(name, self.silences.holding(name, "up"))
            if outcome.reason is Reason.DOCKER_ERROR:  # transient: try again within wake_timeout
                await asyncio.sleep(_DOCKER_RETRY)
                continue
            if outcome.dry_run:
                raise NotWoken("dry_run", f"{name} would be woken, but the receiver runs in dry run")
            if outcome.reason in (Reason.WOKEN, Reason.AT_TARGET):
                return outcome
            raise NotWoken(str(outcome.reason), f"{name} is not woken: {outcome.reason}", outcome.details)

    async def _running(self, name: str) -> bool:
        try:
            snapshot = await self.scaler.swarm.inspect(name)
        except ServiceNotFound:
            raise NotWoken("service_not_found", f"{name} was removed while it woke") from None
        except SwarmError:
            return False  # transient: look again
        if snapshot.replicas == 0:
            raise NotWoken("scaled_to_zero", f"{name} was scaled to 0 while it woke")
        return snapshot.running > 0

    async def _healthy(self, wake: WakeService) -> bool:
        try:
            async with self.session.get(wake.upstream.rstrip("/") + wake.health_path,
                                        timeout=aiohttp.ClientTimeout(total=2)) as answer:
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # The answer is passed on as it comes, compressed or not.
            # No DNS cache: the upstream's name (tasks.<service>) follows the tasks as they come.
            self._session = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(use_dns_cache=False))
        return self._session

    async def _forward(self, request: web.Request, body: bytes, name: str, wake: WakeService,
                       arrived: float, up: Up) -> web.StreamResponse:
        timing = ", ".join(f'{key};desc="{desc}";dur={max(0.0, (end - start) * 1000):.1f}' for key, desc, start, end in (
            ("decision", "wake decision", arrived, up.decided),
            ("task", "until a task runs: start and model load", max(arrived, up.decided), up.running),
            ("health", "until the health path answers", max(arrived, up.running), up.ready),
        ))
        try:
            response = await relay(self.session, request, body, wake.upstream.rstrip("/") + request.rel_url.raw_path_qs,
                                   frozenset({self.config.wake.header.lower()}),
                                   {"Server-Timing": timing, "X-Autoscaler-Wake": str(up.outcome.reason)},
                                   idle=wake.wake_timeout)
        except RelayFailed as err:
            return self._refuse(name, "upstream_error", f"{name} is up but gave no answer: {err}")
        except RelayCut:
            self.metrics.wake_requests.labels(name, "upstream_cut").inc()
            raise
        self.metrics.wake_requests.labels(name, "forwarded").inc()
        return response

    def stopping(self) -> None:  # held requests are answered 503 at once: nothing hangs
        self._closing.set()

    async def close(self) -> None:
        self.stopping()
        for task in self._waking.values():
            task.cancel()
        for task in self._waking.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()


# handler_cancellation: a client that leaves stops its wait (and frees its slot) or its relay.
RUNNER_OPTIONS: dict[str, Any] = {"handler_cancellation": True, "access_log": None}


def wake_app(waker: Waker, max_body_bytes: int) -> web.Application:
    """The wake listener's application: every method and path is a request to hold."""
    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", waker.handle)
    return app


def listening(waker: Waker, host: str, port: int, max_body_bytes: int) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context for the receiver's app: the wake listener on its own port."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async def stopping(_: web.Application) -> None:
            waker.stopping()  # at the receiver's SIGTERM, before it waits for its handlers

        app.on_shutdown.append(stopping)
        runner = web.AppRunner(wake_app(waker, max_body_bytes), handle_signals=False, **RUNNER_OPTIONS)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield
        waker.stopping()
        await runner.cleanup()
        await waker.close()

    return ctx
