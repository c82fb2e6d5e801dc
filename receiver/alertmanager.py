"""The one Alertmanager client (API v2: silences and status), used by the silence poller, by
``autoscaler freeze``/``unfreeze`` and by ``autoscaler doctor``."""

from __future__ import annotations

from typing import Any

import aiohttp


class AlertmanagerError(Exception):
    """Alertmanager could not be reached or refused; the message says which call and why."""


class Alertmanager:
    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float = 10.0):
        self._session = session
        self._base = url.rstrip("/") + "/api/v2"
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = self._base + path
        try:
            async with self._session.request(method, url, json=body, timeout=self._timeout) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise AlertmanagerError(f"{method} {url}: HTTP {resp.status}: {text[:300]}")
                return await resp.json(content_type=None) if text.strip() else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise AlertmanagerError(f"{method} {url}: {type(err).__name__}: {err}") from None

    async def silences(self) -> list[dict[str, Any]]:
        answer = await self._call("GET", "/silences")
        if not isinstance(answer, list):
            raise AlertmanagerError(f"GET {self._base}/silences: not a list of silences")
        return answer

    async def status(self) -> dict[str, Any]:
        """Alertmanager's status; ``config.original`` is the live configuration as YAML."""
        answer = await self._call("GET", "/status")
        if not isinstance(answer, dict):
            raise AlertmanagerError(f"GET {self._base}/status: not a status object")
        return answer

    async def create_silence(self, silence: dict[str, Any]) -> str:
        answer = await self._call("POST", "/silences", silence)
        return str(answer["silenceID"])

    async def expire_silence(self, silence_id: str) -> None:
        await self._call("DELETE", f"/silence/{silence_id}")
