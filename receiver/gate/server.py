"""The gate's HTTP side: bounded reads, one log line per request, 4xx before any Docker call.

``create_gate_app(scope, upstream, limits)`` is the app production runs and the tests build;
``run_gate`` serves it. One catch-all route: every request goes through ``parse_request``, so
nothing reaches the engine that the closed list in ``routes.py`` does not name.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from .forward import Forwarder, Relay
from .routes import Kind, Op, Refused, parse_request
from .scope import Scope
from .upstream import Answer, DockerDown, Upstream

log = logging.getLogger("receiver.gate")

FORWARDER = web.AppKey("forwarder", Forwarder)
LIMITS: web.AppKey[Limits] = web.AppKey("limits")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 256 * 1024  # a service spec is a few KiB, a record less
    body_timeout: float = 10.0  # a body not received within this: 408
    idle_timeout: float = 15.0  # a connection without a complete request head for this long is closed
    docker_timeout: float = 30.0  # per engine call; past it 504


def _message(status: int, text: str) -> web.Response:
    return web.json_response({"message": text}, status=status)


def _relay(answer: Answer) -> web.Response:
    return web.Response(status=answer.status, body=answer.body,
                        headers={"Content-Type": answer.content_type or "application/json"})


async def _body(request: web.Request, op: Op, limits: Limits) -> bytes:
    """The body of a write, bounded in size and time; writes only (a read with a body is refused)."""
    if not op.has_body:
        if request.body_exists:
            raise Refused(400, f"{op.kind} takes no body")
        return b""
    if request.content_type != "application/json":
        raise Refused(415, "a body must be application/json")
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        raise Refused(413, f"a body is at most {limits.max_body_bytes} bytes")
    try:
        return await asyncio.wait_for(request.read(), limits.body_timeout)
    except TimeoutError:
        raise Refused(408, f"the body did not arrive within {limits.body_timeout:g}s") from None
    except web.HTTPRequestEntityTooLarge:
        raise Refused(413, f"a body is at most {limits.max_body_bytes} bytes") from None


def _log(request: web.Request, status: int, kind: str, service: str = "", message: str = "") -> None:
    entry = {"event": "gate", "method": request.method[:10], "path": request.raw_path[:200], "op": kind,
             "status": status}
    if service:
        entry["service"] = service
    if message:
        entry["message"] = message[:300]
    log.info(json.dumps(entry))


async def _events(request: web.Request, op: Op, upstream: Upstream) -> web.StreamResponse:
    """The engine's service events of the configured services, passed through as they come."""
    filters = json.dumps({"type": ["service"], "service": list(op.names)})
    upstream_answer = await upstream.stream(f"{op.prefix}/events", {"filters": filters})
    try:
        if upstream_answer.status != 200:
            body = await upstream_answer.read()
            return _relay(Answer(upstream_answer.status, body, upstream_answer.headers.get("Content-Type", "")))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        async for chunk in upstream_answer.content.iter_any():
            await response.write(chunk)
        return response
    finally:
        upstream_answer.release()


async def handle(request: web.Request) -> web.StreamResponse:
    forward = request.app[FORWARDER]
    kind = "refused"
    try:
        op = parse_request(request.method, request.raw_path, request.headers, forward.scope)
        kind = op.kind.value
        if op.kind is Kind.EVENTS:
            await _body(request, op, request.app[LIMITS])
            _log(request, 200, kind)
            return await _events(request, op, forward.upstream)
        answer, service = await forward(op, await _body(request, op, request.app[LIMITS]))
    except Refused as err:
        _log(request, err.status, kind, message=str(err))
        return _message(err.status, str(err))
    except Relay as relay:
        answer, service = relay.answer, ""
    except DockerDown as err:
        _log(request, err.status, kind, message=str(err))
        return _message(err.status, f"docker gate: {err}")
    _log(request, answer.status, kind, service)
    return _relay(answer)


def create_gate_app(scope: Scope, upstream: Upstream, limits: Limits | None = None) -> web.Application:
    limits = limits or Limits()
    app = web.Application(client_max_size=limits.max_body_bytes, handler_args={"keepalive_timeout": limits.idle_timeout})
    app[FORWARDER] = Forwarder(scope, upstream)
    app[LIMITS] = limits

    async def session(app: web.Application) -> AsyncIterator[None]:
        await upstream.start()
        yield
        await upstream.close()

    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def run_gate(scope: Scope, host: str, port: int, docker: str, limits: Limits | None = None) -> None:
    limits = limits or Limits()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    app = create_gate_app(scope, Upstream(docker, limits.docker_timeout), limits)
    print(json.dumps({"event": "start", "role": "gate", "listen": f"{host}:{port}", "docker": docker,
                      "services": sorted(scope.services)}), flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None)

