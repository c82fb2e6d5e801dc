"""Operator commands: ``autoscaler status``, ``freeze`` and ``unfreeze``.

``status`` reads the receiver's ``/status``; ``freeze``/``unfreeze`` create and expire
Alertmanager silences (API v2) on a service's scaling alerts.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, TextIO, TypeVar

import aiohttp

from .alertmanager import Alertmanager, AlertmanagerError
from .config import ScalingAlerts
from .silences import describe, freeze_matchers, freeze_of, is_active, is_freeze_of
from .timeutil import format_rfc3339, parse_duration, parse_rfc3339

T = TypeVar("T")


class OperatorError(Exception):
    pass


def _get_json(url: str, timeout: float = 10) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raise OperatorError(f"GET {url}: HTTP {err.code}: {err.read()[:300].decode(errors='replace')}") from None
    except (OSError, ValueError) as err:
        raise OperatorError(f"GET {url}: {err}") from None


def _with_alertmanager(url: str, work: Callable[[Alertmanager], Awaitable[T]]) -> T:
    async def run() -> T:
        async with aiohttp.ClientSession() as session:
            return await work(Alertmanager(session, url))

    try:
        return asyncio.run(run())
    except AlertmanagerError as err:
        raise OperatorError(str(err)) from None


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def _ago(value: str | None, now: float) -> str:
    t = _parse_time(value)
    if t is None:
        return "never"
    return f"{_span(now - t)} ago"


def _span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def status_rows(status: dict[str, Any], now: float) -> list[list[str]]:
    """Pure: the table ``autoscaler status`` prints, from the receiver's /status answer."""
    rows = [["SERVICE", "REPLICAS", "BOUNDS", "LAST UP", "LAST DOWN", "COOLDOWN UP/DOWN", "LAST DECISION", "FROZEN"]]
    for s in status.get("services", []):
        if "error" in s:
            rows.append([s["service"], "?", f"{s['min_replicas']}..{s['max_replicas']}", "", "", "", f"error: {s['error'][:60]}", ""])
            continue
        last = s.get("last_decision")
        decision = "-" if not last else f"{last['direction']} {last['from']}->{last['to']} {last['reason']}"
        frozen = s.get("frozen", "unknown")
        if frozen == "unknown":
            frozen_text = "?"  # the receiver has no alertmanager.url
        elif frozen is None:
            frozen_text = "paused (label)" if s.get("paused") else "no"
        else:
            until = _parse_time(frozen["until"])
            left = "" if until is None else f" ({_span(until - now)} left)"
            frozen_text = f"until {frozen['until']}{left} [{'/'.join(frozen['directions'])}]"
        if s.get("paused") and frozen_text != "paused (label)":
            frozen_text += ", paused (label)"
        rows.append([
            s["service"], f"{s['replicas_running']}/{s['replicas_desired']}", f"{s['min_replicas']}..{s['max_replicas']}",
            _ago(s.get("last_scale_up"), now), _ago(s.get("last_scale_down"), now),
            f"{_span(s['cooldown_remaining_up'])}/{_span(s['cooldown_remaining_down'])}", decision, frozen_text,
        ])
    return rows


def print_table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip(), file=out)


def status(url: str, out: TextIO = sys.stdout) -> int:
    answer = _get_json(url.rstrip("/") + "/status")
    if answer.get("dry_run"):
        print("dry run: decisions are reported, nothing is changed", file=out)
    print_table(status_rows(answer, time.time()), out)
    return 0


def freeze(alertmanager: str, service: str, duration: str, comment: str, out: TextIO = sys.stdout) -> int:
    seconds = parse_duration(duration)
    if seconds <= 0:
        raise OperatorError("--for must be longer than zero")
    now = time.time()
    body = {
        "matchers": freeze_matchers(service),
        "startsAt": format_rfc3339(now),
        "endsAt": format_rfc3339(now + seconds),
        "createdBy": f"autoscaler freeze ({getpass.getuser()})",
        "comment": comment,
    }
    silence_id = _with_alertmanager(alertmanager, lambda am: am.create_silence(body))
    print(f"froze {service} until {body['endsAt']}: silence {silence_id}", file=out)
    return 0


def unfreeze(alertmanager: str, service: str, alerts: ScalingAlerts | None = None, out: TextIO = sys.stdout) -> int:
    """Expire the freezes of ``service`` (silences with exactly the matchers ``freeze`` writes);
    any other silence that still holds its scaling alerts is named, left alone, and an error."""
    alerts = alerts or ScalingAlerts()

    async def work(am: Alertmanager) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ours = [s for s in await am.silences() if is_active(s) and is_freeze_of(s, service)]
        for s in ours:
            await am.expire_silence(s["id"])
        return ours, await am.silences()

    expired, after = _with_alertmanager(alertmanager, work)
    for s in expired:
        print(f"expired silence {s['id']} ({s.get('comment', '')!r} by {s.get('createdBy', '')})", file=out)
    left = freeze_of(after, service, alerts)
    if left is not None:
        others = [s for s in after if s.get("id") in left.silence_ids]
        raise OperatorError(
            f"{service} is still frozen by {len(others)} silence(s) that autoscaler freeze did not make; "
            "left alone (expire one with `amtool silence expire ID` if that is meant):\n  "
            + "\n  ".join(describe(s) for s in others))
    if not expired:
        print(f"{service} was not frozen", file=out)
    return 0
