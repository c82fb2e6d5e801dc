"""Configuration: pydantic models and YAML loading.

Every default lives here and in configparts.py. Loading fails before the server starts, with the YAML path of each
bad key (``services.ollama_ollama.max_replicas: ...``).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import (
    Field,
    ValidationError,
    model_validator,
)

from .configparts import (
    HEALTH_CHECKERS,
    MAX_LEAD,
    Duration,
    Schedule,
    TimeInterval,
    TimeRange,
    WakeConfig,
    WakeService,
    _Strict,
    parse_listen,
)
from .models import LABEL_ALERTNAME, LABEL_SCALE, LABEL_SERVICE
from .timeutil import parse_duration

DEFAULT_LISTEN = "0.0.0.0:8080"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

__all__ = ["HEALTH_CHECKERS", "MAX_LEAD", "Duration", "Schedule", "TimeInterval", "TimeRange", "WakeConfig",
           "WakeService", "parse_duration", "parse_listen"]


class ServicePolicy(_Strict):
    """Bounds, steps and cooldowns of one Swarm service."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(ge=1)
    scale_up_step: int = Field(1, ge=1)
    scale_down_step: int = Field(1, ge=1)
    scale_up_cooldown: Duration = 120.0
    scale_down_cooldown: Duration = 300.0
    # How long a scale-up waits for tasks that are not running yet (pulling, loading a model)
    # before it steps again anyway.
    convergence_wait: Duration = 300.0
    # Requests held while the service has no replica wake it (needs the top-level `wake`).
    wake: WakeService | None = None
    schedules: list[Schedule] = Field(default_factory=list)

    def clamp(self, replicas: int) -> int:
        """``replicas`` within the bounds."""
        return min(max(replicas, self.min_replicas), self.max_replicas)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ServicePolicy:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )
        return self

    @model_validator(mode="after")
    def _schedules_within_max(self) -> ServicePolicy:
        for i, window in enumerate(self.schedules):
            if window.min_replicas > self.max_replicas:
                raise ValueError(f"schedules.{i}.min_replicas ({window.min_replicas}) is above "
                                 f"max_replicas ({self.max_replicas})")
        return self


class DockerConfig(_Strict):
    host: str | None = None  # None: DOCKER_HOST, else the local socket
    timeout: Duration = 10.0
    update_retries: int = Field(3, ge=0, le=20)
    # Decisions read a copy of the configured services kept current by Docker's event stream
    # (reads go to Docker while the stream is down); tasks are re-listed every watch_tasks_interval.
    watch: bool = True
    watch_tasks_interval: Duration = Field(1.0, gt=0)
    watch_resync: Duration = Field(30.0, gt=0)


class AuthConfig(_Strict):
    bearer_token_file: Path | None = None


# The shipped rules' alerts that carry a `scale` label (rules/*.rules.yml), by direction.
SCALING_ALERTS_UP = ("OllamaHighCPU", "OllamaHighGPU", "OllamaHighInFlight")
SCALING_ALERTS_DOWN = ("OllamaIdle", "OllamaUnused")


class ScalingAlerts(_Strict):
    """The scaling alerts as Alertmanager sees them, to judge which silences freeze a service:
    their names per direction and the labels every one of them carries besides ``alertname``,
    ``service`` and ``scale`` (Prometheus ``external_labels``, say). A label not listed here is
    taken as absent from them, as Alertmanager treats an alert without it."""

    up: tuple[str, ...] = SCALING_ALERTS_UP
    down: tuple[str, ...] = SCALING_ALERTS_DOWN
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _labels_are_extra(self) -> ScalingAlerts:
        own = sorted({LABEL_ALERTNAME, LABEL_SERVICE, LABEL_SCALE} & set(self.labels))
        if own:
            raise ValueError(f"labels: {', '.join(own)} cannot be set here (every scaling alert has its own)")
        return self


class AlertmanagerConfig(_Strict):
    """Where to read silences from, to show frozen services (optional)."""

    url: str | None = None  # e.g. http://alertmanager:9093
    poll_interval: Duration = 30.0
    timeout: Duration = 5.0
    scaling_alerts: ScalingAlerts = ScalingAlerts()


class PrometheusConfig(_Strict):
    """Where ``autoscaler doctor`` reads the rules and series from (optional; the receiver never does)."""

    url: str | None = None  # e.g. http://prometheus:9090
    timeout: Duration = 10.0


class Config(_Strict):
    listen: str = DEFAULT_LISTEN
    docker: DockerConfig = DockerConfig()
    auth: AuthConfig = AuthConfig()
    alertmanager: AlertmanagerConfig = AlertmanagerConfig()
    prometheus: PrometheusConfig = PrometheusConfig()
    wake: WakeConfig = WakeConfig()
    dry_run: bool = False
    # How often every configured service is checked for a redeploy that undid our scaling
    # (and its record brought up to date); 0 turns it off.
    reconcile_interval: Duration = 30.0
    # How often services below their scheduled minimum are raised to it; 0 turns it off.
    schedule_interval: Duration = 30.0
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024)
    # Bounds that keep a flood or a slow client from starving the receiver.
    webhook_concurrency: int = Field(64, ge=1)  # webhook requests read and handled at once
    queue_timeout: Duration = 10.0  # a request waiting longer for a slot gets 503 (retried)
    body_timeout: Duration = 10.0  # a body not received within this gets 503 (retried)
    # /status and /-/ready read the swarm at most once per this interval (they are unauthenticated).
    status_cache: Duration = 2.0
    services: dict[str, ServicePolicy] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _listen_has_port(self) -> Config:
        parse_listen(self.listen)
        return self

    @model_validator(mode="after")
    def _wake_has_a_listener(self) -> Config:
        waking = sorted(name for name, p in self.services.items() if p.wake is not None)
        if waking and self.wake.listen is None:
            raise ValueError(f"wake.listen: needed by services.{waking[0]}.wake (where Traefik's fallback route sends requests)")
        if self.wake.listen is not None and parse_listen(self.wake.listen)[1] == parse_listen(self.listen)[1]:
            raise ValueError(f"wake.listen: the port of listen ({self.listen}) is the webhook's")
        return self


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists each one with its YAML path."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def _format_errors(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        problems.append(f"{path}: {msg}")
    return problems


def parse_config(data: object, source: str = "<config>") -> Config:
    if data is None:
        data = {}
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, _format_errors(err)) from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(str(path), [f"cannot read: {err.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(str(path), [f"invalid YAML: {err}"]) from None
    return parse_config(data, str(path))


def read_token(config: Config) -> str | None:
    """The bearer token, or None when authentication is off. Fails on an unreadable or empty file."""
    token_file = config.auth.bearer_token_file
    if token_file is None:
        return None
    try:
        token = token_file.read_text().strip()
    except OSError as err:
        raise ConfigError(str(token_file), [f"auth.bearer_token_file: cannot read: {err.strerror}"]) from None
    if not token:
        raise ConfigError(str(token_file), ["auth.bearer_token_file: the file is empty"])
    return token
