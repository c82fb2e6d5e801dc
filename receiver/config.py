"""Configuration: pydantic models and YAML loading.

Every default lives here. Loading fails before the server starts, with the YAML path of each
bad key (``services.ollama_ollama.max_replicas: ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from .models import LABEL_ALERTNAME, LABEL_SCALE, LABEL_SERVICE
from .routes import check_time_interval
from .timeutil import parse_duration

DEFAULT_LISTEN = "0.0.0.0:8080"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WakeService(_Strict):
    """Wake on request (receiver/wake.py): where a held request goes once the service is up."""

    upstream: str  # the service as the receiver reaches it, e.g. http://ollama:11434
    health_path: str = "/api/version"  # answers 200 once a replica serves
    max_pending: int = Field(10, ge=1)  # held requests at once; beyond: 503 with Retry-After
    wake_timeout: Duration = 300.0  # held requests get 503 when the service is not up by then

    @model_validator(mode="after")
    def _upstream_is_http(self) -> WakeService:
        if not self.upstream.startswith(("http://", "https://")) or "/" in self.upstream.split("//", 1)[1].rstrip("/"):
            raise ValueError(f"upstream must be http(s)://HOST[:PORT] (got {self.upstream!r})")
        if not self.health_path.startswith("/"):
            raise ValueError(f"health_path must start with / (got {self.health_path!r})")
        return self


# A range in a time interval: "monday:friday", "1:15", or a bare number as YAML reads it.
RangeSpec = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v)]
MAX_LEAD = 86400.0  # a scheduled window is applied at most a day before it starts


class TimeRange(_Strict):
    start_time: str
    end_time: str


class TimeInterval(_Strict):
    """One entry of an Alertmanager ``time_intervals`` list: the same fields, refused by the same
    rules (``routes.check_time_interval``), evaluated by the same code (``routes.in_time_intervals``)."""

    weekdays: list[RangeSpec] | None = None
    times: list[TimeRange] | None = None
    days_of_month: list[RangeSpec] | None = None
    months: list[RangeSpec] | None = None
    years: list[RangeSpec] | None = None
    location: str | None = None  # an IANA time zone; default UTC

    @model_validator(mode="after")
    def _as_alertmanager_loads_it(self) -> TimeInterval:
        check_time_interval(self.entry())
        return self

    def entry(self) -> dict[str, Any]:
        """The entry as ``routes.in_time_intervals`` reads it (Alertmanager's YAML shape)."""
        return self.model_dump(exclude_none=True)


class Schedule(_Strict):
    """A scheduled minimum: at least ``min_replicas`` while any of ``time_intervals`` holds,
    applied from ``lead`` before it starts (receiver/schedule.py)."""

    name: str = ""
    min_replicas: int = Field(ge=0)
    lead: Annotated[Duration, Field(le=MAX_LEAD)] = 0.0
    time_intervals: list[TimeInterval] = Field(min_length=1)


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
    watch_tasks_interval: Duration = 1.0
    watch_resync: Duration = 30.0


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


# Health checkers' User-Agents (a case-insensitive substring): their requests never wake a service.
HEALTH_CHECKERS = ("kube-probe", "GoogleHC", "ELB-HealthChecker", "Consul Health Check", "Blackbox Exporter",
                   "Uptime-Kuma", "UptimeRobot", "Pingdom", "StatusCake", "Site24x7", "Better Uptime", "check_http")


class WakeConfig(_Strict):
    """The wake listener: Traefik's fallback route for services at 0 replicas (docs/deploy.md)."""

    listen: str | None = None  # e.g. 0.0.0.0:8081; None: no service is woken by requests
    header: str = "X-Autoscaler-Service"  # set by Traefik's fallback route: the service to wake
    health_checkers: tuple[str, ...] = HEALTH_CHECKERS
    retry_after: Duration = 10.0  # the Retry-After of a 503 (busy, not woken)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)  # a held request's body (prompts, images)

    @model_validator(mode="after")
    def _listen_has_port(self) -> WakeConfig:
        if self.listen is not None:
            parse_listen(self.listen)
        return self


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


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen must be HOST:PORT (got {listen!r})")
    return host.strip("[]") or "0.0.0.0", int(port)


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
