"""The configuration's smaller blocks (receiver/config.py assembles them): durations and
listen addresses, the wake settings, and scheduled windows in Alertmanager's time-interval form."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .routes import check_time_interval
from .timeutil import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen must be HOST:PORT (got {listen!r})")
    return host.strip("[]") or "0.0.0.0", int(port)


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


# Health checkers' User-Agents (a case-insensitive substring): their requests never wake a service.
HEALTH_CHECKERS = ("kube-probe", "GoogleHC", "ELB-HealthChecker", "Consul Health Check", "Blackbox Exporter",
                   "Uptime-Kuma", "UptimeRobot", "Pingdom", "StatusCake", "Site24x7", "Better Uptime", "check_http")


class WakeConfig(_Strict):
    """The wake listener: Traefik's fallback route for services at 0 replicas (docs/deploy.md)."""

    listen: str | None = None  # e.g. 0.0.0.0:8081; None: no service is woken by requests
    header: str = "X-Autoscaler-Service"  # set by Traefik's fallback route: the service to wake
    health_checkers: tuple[str, ...] = HEALTH_CHECKERS
    retry_after: Duration = 10.0  # the Retry-After of a 503 (busy, not woken)
    # A held request's body (prompts, images): max_pending x this is held in memory at worst,
    # per service; keep it within the receiver's memory limit (stack.yml: 256M).
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _checkers_not_empty(self) -> WakeConfig:
        if any(not c.strip() for c in self.health_checkers):
            raise ValueError("health_checkers: an empty entry would match every User-Agent")
        return self

    @model_validator(mode="after")
    def _listen_has_port(self) -> WakeConfig:
        if self.listen is not None:
            parse_listen(self.listen)
        return self
