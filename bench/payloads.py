"""Alertmanager webhook payloads (version 4) as the benchmarks send them."""

from __future__ import annotations

from typing import Any


def alert(service: str, scale: str, *, name: str = "OllamaHighCPU", fingerprint: str | None = None,
          desired: str | None = None) -> dict[str, Any]:
    annotations = {"summary": f"{service} asks to scale {scale}", "description": "benchmark"}
    if desired is not None:
        annotations["desired_replicas"] = desired
    return {
        "status": "firing",
        "labels": {"alertname": name, "service": service, "scale": scale, "severity": "scaling"},
        "annotations": annotations,
        "startsAt": "2026-12-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint or f"{service}-{scale}-{name}",
    }


def payload(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": "4", "groupKey": '{}:{alertname="OllamaHighCPU"}', "truncatedAlerts": 0,
        "receiver": "autoscaler", "status": "firing", "alerts": alerts,
        "groupLabels": {"alertname": "OllamaHighCPU"}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
    }


def spread(alerts: int, services: list[str]) -> dict[str, Any]:
    """``alerts`` firing scale-up alerts, dealt round-robin over ``services`` (distinct fingerprints)."""
    return payload([
        alert(services[i % len(services)], "up", name=f"BenchAlert{i}", fingerprint=f"{i:016x}")
        for i in range(alerts)
    ])
