"""Passing a held request on to its service and streaming the answer back (for receiver/wake.py)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

# Hop-by-hop headers (RFC 9110 7.6.1) and those the relay sets itself.
HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                 "transfer-encoding", "upgrade", "host", "content-length"})


class RelayFailed(Exception):
    """The service gave no answer (nothing was sent to the client yet)."""


async def relay(session: aiohttp.ClientSession, request: web.Request, body: bytes, url: str,
                drop: frozenset[str], add: dict[str, str]) -> web.StreamResponse:
    """``request`` (its ``body`` read already) sent to ``url`` without the ``drop`` headers; the
    answer streamed back as it comes, with the ``add`` headers. A failure before the answer
    began is a ``RelayFailed``; one in the middle of it ends the client's answer there."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP | drop}
    try:
        async with session.request(request.method, url, headers=headers, data=body, allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)) as answer:
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
                response.force_close()  # cut as the service cut it: the client sees a short stream
                return response
            await response.write_eof()
            return response
    except (aiohttp.ClientError, TimeoutError) as err:
        raise RelayFailed(type(err).__name__) from None
