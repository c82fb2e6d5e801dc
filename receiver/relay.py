"""Passing a held request on to its service and streaming the answer back (for receiver/wake.py)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

# Hop-by-hop headers (RFC 9110 7.6.1) and those the relay sets itself.
HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                 "transfer-encoding", "upgrade", "host", "content-length"})


class RelayFailed(Exception):
    """The service gave no answer (nothing was sent to the client yet)."""


class RelayCut(Exception):
    """The service's answer broke off after it began; the client's connection was aborted."""


async def relay(session: aiohttp.ClientSession, request: web.Request, body: bytes, url: str,
                drop: frozenset[str], add: dict[str, str], idle: float) -> web.StreamResponse:
    """``request`` (its ``body`` read already) sent to ``url`` without the ``drop`` headers; the
    answer streamed back as it comes, with the ``add`` headers. A failure before the answer
    began (or no byte for ``idle`` seconds) is a ``RelayFailed``; one in the middle of the answer
    aborts the client's connection and raises ``RelayCut``."""
    named = {h.strip().lower() for h in request.headers.get("Connection", "").split(",")}  # hop-by-hop too
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP | drop | named}
    try:
        async with session.request(request.method, url, headers=headers, data=body, allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=idle)) as answer:
            response = web.StreamResponse(status=answer.status, reason=answer.reason)
            for key, value in answer.headers.items():
                if key.lower() not in HOP:
                    response.headers.add(key, value)
            response.headers.update(add)
            await response.prepare(request)
            try:
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
            except (aiohttp.ClientError, TimeoutError):
                # Cut as the service cut it (or went silent for ``idle``): the client's connection
                # is aborted, so it sees a broken answer, not a short one that looks complete.
                if request.transport is not None:
                    request.transport.abort()
                raise RelayCut from None
            await response.write_eof()
            return response
    except (aiohttp.ClientError, TimeoutError) as err:
        raise RelayFailed(type(err).__name__) from None
