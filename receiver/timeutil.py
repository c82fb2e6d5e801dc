"""Durations and RFC 3339 times: the one parser and formatter of each, for the whole package."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_DURATION_HINT = "use a number of seconds or a string like 90s, 2m, 1h30m"
_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_duration(value: object) -> float:
    """Seconds from ``90s``, ``2m``, ``1h30m``, ``500ms`` (Prometheus and Alertmanager forms,
    ``w`` and ``y`` included) or a plain number of seconds. Never negative."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"a duration is a number of seconds or a string ({_DURATION_HINT})")
    if isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}") from None
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        seconds = float(value)
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative (got {value!r})")
    return seconds


def parse_rfc3339(value: str) -> float:
    """Epoch seconds from an RFC 3339 time (``Z`` or an offset; nanosecond fractions allowed,
    as Docker writes them). A time without a zone is refused: it names no instant."""
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise ValueError(f"not an RFC 3339 time: {str(value)[:60]!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"not an RFC 3339 time (no time zone): {value[:60]!r}")
    return parsed.timestamp()


def format_rfc3339(epoch: float, *, micro: bool = True) -> str:
    """UTC, with a ``Z``; microseconds unless ``micro`` is false."""
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.fromtimestamp(epoch, UTC).strftime(pattern)


def parse_time_arg(text: str) -> float:
    """A command-line time: Unix seconds or RFC 3339."""
    try:
        return float(text)
    except ValueError:
        return parse_rfc3339(text)
