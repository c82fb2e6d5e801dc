"""Alertmanager webhook payloads (version 4) as the tests and the benchmarks send them."""

from __future__ import annotations

from typing import Any


def alert(service: str | None = "ollama_ollama", scale: str | None = "up", *, status: str = "firing",
          desired: str | None = None, name: str = "OllamaHighCPU", fingerprint: str | None = None) -> dict[str, Any]:
    """One alert; ``service`` or ``scale`` None leaves that label out."""
    labels = {"alertname": name}
    if service is not None:
        labels["service"] = service
    if scale is not None:
        labels["scale"] = scale
    annotations = {"summary": f"{service} asks to scale {scale}"}
    if desired is not None:
        annotations["desired_replicas"] = desired
    return {
        "status": status, "labels": labels, "annotations": annotations,
        "startsAt": "2026-12-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-01T00:10:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint or f"{service}-{scale}-{name}",
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """A notification of ``alerts``, firing if any alert fires."""
    return {
        "version": "4", "groupKey": '{}:{alertname="OllamaHighCPU"}', "truncatedAlerts": 0, "receiver": "autoscaler",
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": list(alerts), "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
    }
