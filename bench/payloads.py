"""Alertmanager webhook payloads (version 4) as the benchmarks send them."""

from __future__ import annotations

from typing import Any

from devkit.payloads import alert, payload

__all__ = ["alert", "payload", "spread"]


def spread(alerts: int, services: list[str]) -> dict[str, Any]:
    """``alerts`` firing scale-up alerts, dealt round-robin over ``services`` (distinct fingerprints)."""
    return payload(*[
        alert(services[i % len(services)], "up", name=f"BenchAlert{i}", fingerprint=f"{i:016x}")
        for i in range(alerts)
    ])
