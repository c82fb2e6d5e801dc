"""The receiver's own metrics, on an injected registry. Names are documented in the README."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .domain import SwarmError

# Services named in a payload but not in the configuration share one label value, so a
# sender cannot grow the metrics without bound.
OTHER_SERVICE = "_unconfigured"
COPY_READ = "inspect_copy"  # the operation AsyncSwarm reports for a read the watched copy answered


class Metrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.decisions = Counter(
            "autoscaler_decisions", "Scaling decisions by service, direction and reason code.",
            ["service", "direction", "reason"], registry=registry,
        )
        self.scale_events = Counter(
            "autoscaler_scale_events", "Replica changes applied to the swarm.",
            ["service", "direction"], registry=registry,
        )
        self.replicas = Gauge(
            "autoscaler_replicas", "Replicas the service asks for, as last read or set.",
            ["service"], registry=registry,
        )
        self.running_replicas = Gauge(
            "autoscaler_running_replicas", "Tasks of the service running, as last read.",
            ["service"], registry=registry,
        )
        self.last_scale = Gauge(
            "autoscaler_last_scale_timestamp_seconds", "Time of the last scale by service and direction.",
            ["service", "direction"], registry=registry,
        )
        self.webhook_requests = Counter(
            "autoscaler_webhook_requests", "Webhook requests by HTTP status code.",
            ["code"], registry=registry,
        )
        self.webhook_duration = Histogram(
            "autoscaler_webhook_request_duration_seconds", "Time to answer a webhook request.",
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.docker_duration = Histogram(
            "autoscaler_docker_request_duration_seconds", "Docker API calls by operation.",
            ["operation"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.docker_errors = Counter(
            "autoscaler_docker_errors", "Failed Docker API calls by operation and kind.",
            ["operation", "kind"], registry=registry,
        )
        self.alerts_received = Counter(
            "autoscaler_alerts_received", "Alerts received in webhook payloads, by status.",
            ["status"], registry=registry,
        )
        self.alerts_ignored = Counter(
            "autoscaler_alerts_ignored", "Alerts that asked for nothing, by reason code.",
            ["reason"], registry=registry,
        )

        self.min_replicas = Gauge(
            "autoscaler_min_replicas", "The service's effective minimum: min_replicas or a scheduled window's, if larger.",
            ["service"], registry=registry,
        )
        self.frozen = Gauge(
            "autoscaler_frozen", "1 while an Alertmanager silence holds the service's scaling alerts.",
            ["service"], registry=registry,
        )
        self.swarm_reads = Counter(
            "autoscaler_swarm_reads", "Service reads for decisions, status and reconcile, by source (copy, docker).",
            ["source"], registry=registry,
        )
        self.swarm_copy_live = Gauge(
            "autoscaler_swarm_copy_live", "1 while the watched copy of the swarm follows Docker's event stream.",
            registry=registry,
        )
        self.background_errors = Counter(
            "autoscaler_background_errors", "Failures of a background job (silences, reconcile), which goes on.",
            ["job"], registry=registry,
        )
        self.alertmanager_polls = Counter(
            "autoscaler_alertmanager_polls", "Reads of Alertmanager's silences, by result.",
            ["result"], registry=registry,
        )
        self.wake_requests = Counter(
            "autoscaler_wake_requests", "Requests that reached the wake listener, by service and how they ended.",
            ["service", "result"], registry=registry,
        )
        self.wake_pending = Gauge(
            "autoscaler_wake_pending", "Requests held now while their service wakes.",
            ["service"], registry=registry,
        )
        self.wake_seconds = Histogram(
            "autoscaler_wake_seconds", "From a held request's arrival until its service answered its health path.",
            ["service"], buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300), registry=registry,
        )

    def observe_docker(self, operation: str, seconds: float, error: SwarmError | None) -> None:
        if operation == COPY_READ:  # answered by the watched copy: no Docker call
            self.swarm_reads.labels("copy").inc()
            return
        if operation == "inspect":
            self.swarm_reads.labels("docker").inc()
        self.docker_duration.labels(operation).observe(seconds)
        if error is not None:
            self.docker_errors.labels(operation, error.kind).inc()
