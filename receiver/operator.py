"""Operator commands: ``autoscaler status``, ``freeze`` and ``unfreeze``.

``status`` reads the receiver's ``/status``; ``freeze``/``unfreeze`` create and expire
Alertmanager silences (API v2) on a service's scaling alerts.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from .config import parse_duration
from .silences import freeze_matchers, freeze_of, is_active, silenced_directions

DEFAULT_RECEIVER = os.environ.get("AUTOSCALER_URL", "http://127.0.0.1:8080")
DEFAULT_ALERTMANAGER = os.environ.get("ALERTMANAGER_URL", "http://127.0.0.1:9093")


class OperatorError(Exception):
    pass


def _request(method: str, url: str, body: Any = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as err:
        raise OperatorError(f"{method} {url}: HTTP {err.code}: {err.read()[:300].decode(errors='replace')}") from None
    except OSError as err:
        raise OperatorError(f"{method} {url}: {err}") from None
    return json.loads(raw) if raw.strip() else None


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


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
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip(), file=out)


def status(url: str, out: TextIO = sys.stdout) -> int:
    answer = _request("GET", url.rstrip("/") + "/status")
    if answer.get("dry_run"):
        print("dry run: decisions are reported, nothing is changed", file=out)
    print_table(status_rows(answer, time.time()), out)
    return 0


def freeze(alertmanager: str, service: str, duration: str, comment: str, out: TextIO = sys.stdout) -> int:
    seconds = parse_duration(duration)
    if seconds <= 0:
        raise OperatorError("--for must be longer than zero")
    now = datetime.now(UTC)
    body = {
        "matchers": freeze_matchers(service),
        "startsAt": now.isoformat().replace("+00:00", "Z"),
        "endsAt": (now + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
        "createdBy": f"autoscaler freeze ({getpass.getuser()})",
        "comment": comment,
    }
    answer = _request("POST", alertmanager.rstrip("/") + "/api/v2/silences", body)
    print(f"froze {service} until {body['endsAt']}: silence {answer['silenceID']}", file=out)
    return 0


def unfreeze(alertmanager: str, service: str, out: TextIO = sys.stdout) -> int:
    base = alertmanager.rstrip("/")
    silences = _request("GET", base + "/api/v2/silences")
    holding = [s for s in silences if is_active(s) and silenced_directions(s, service)]
    for s in holding:
        _request("DELETE", f"{base}/api/v2/silence/{s['id']}")
        print(f"expired silence {s['id']} ({s.get('comment', '')!r} by {s.get('createdBy', '')})", file=out)
    left = freeze_of(_request("GET", base + "/api/v2/silences"), service)
    if not holding:
        print(f"{service} was not frozen", file=out)
    if left is not None:
        raise OperatorError(f"{service} is still frozen by {', '.join(left.silence_ids)}")
    return 0
