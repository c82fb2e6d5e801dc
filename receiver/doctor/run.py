"""``autoscaler doctor``: read the live deployment, check each link of each configured service,
print one line per link. Exit 0 when every link holds, 1 when any is broken, 2 when the doctor
cannot run (a configuration that does not load, an unreachable Prometheus or Alertmanager)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import TextIO

from ..app import WEBHOOK_PATH
from ..config import Config, ConfigError, load_config, parse_listen, read_token
from ..dockerapi import DockerSwarm
from ..domain import Direction, ServiceSnapshot, SwarmError
from .amlinks import AlertShape, route_link, silences_link
from .gather import CannotRun, Facts, gather, read_service
from .links import Link, State, docker_access_link, service_link, webhook_link
from .promlinks import alert_rules_link, input_series_link, recording_rules_link
from .signals import rules_of

EXIT_OK, EXIT_BROKEN, EXIT_CANNOT_RUN = 0, 1, 2


@dataclass(frozen=True)
class Where:
    prometheus: str
    alertmanager: str
    receiver: str
    docker: str


def chain(name: str, config: Config, facts: Facts, read: ServiceSnapshot | SwarmError, probe: SwarmError | None,
          where: Where, now: float) -> list[Link]:
    """Pure: every link of one service, in the chain's order."""
    found = rules_of(facts.rules)
    shapes = [AlertShape(a.name, a.direction, a.labels) for a in found.alerts] or \
        [AlertShape("", d, {}) for d in Direction]
    configured = config.alertmanager.scaling_alerts
    scaling = configured.model_copy(update={
        "up": tuple(dict.fromkeys([*configured.up, *(a.name for a in found.alerts if a.direction is Direction.UP)])),
        "down": tuple(dict.fromkeys([*configured.down, *(a.name for a in found.alerts if a.direction is Direction.DOWN)])),
    })
    routes_test = f"amtool config routes test --alertmanager.url={where.alertmanager} service={name} scale=up"
    return [
        service_link(name, config.services[name], read),
        input_series_link(name, found, facts.values),
        recording_rules_link(name, found, facts.values),
        alert_rules_link(name, found, facts.values),
        route_link(name, shapes, facts.am_config, WEBHOOK_PATH, routes_test),
        silences_link(name, shapes, facts.am_config, facts.silences, now, where.alertmanager, scaling),
        webhook_link(name, facts.webhook),
        docker_access_link(name, where.docker, read, probe),
    ]


def render(links: list[Link], out: TextIO) -> None:
    width = max(len(link.title) for link in links)
    service = None
    for link in links:
        if link.service != service:
            service = link.service
            print(service, file=out)
        state = "BROKEN" if link.state is State.BROKEN else str(link.state)
        print(f"  {state:<7} {link.title:<{width}}  {link.checked}", file=out)
        if link.todo:
            print(f"  {'':<7} {'':<{width}}  -> {link.todo}", file=out)


def summary(links: list[Link]) -> str:
    bad = [link for link in links if link.state is State.BROKEN]
    services = sorted({link.service for link in links})
    if not bad:
        return f"doctor: every link holds for {', '.join(services)}"
    return "doctor: broken: " + ", ".join(f"{link.service} {link.title}" for link in bad)


def _settings(config_path: str, prometheus: str | None, alertmanager: str | None, receiver: str | None,
              service: str | None) -> tuple[Config, str | None, Where, list[str]]:
    try:
        config = load_config(config_path)
        token = read_token(config)
    except ConfigError as err:
        raise CannotRun(f"{err.source}: invalid configuration: {'; '.join(err.problems)}") from None
    prometheus = prometheus or config.prometheus.url
    alertmanager = alertmanager or config.alertmanager.url
    if not prometheus:
        raise CannotRun("no Prometheus URL: set prometheus.url in the configuration or pass --prometheus URL")
    if not alertmanager:
        raise CannotRun("no Alertmanager URL: set alertmanager.url in the configuration or pass --alertmanager URL")
    if service is not None and service not in config.services:
        raise CannotRun(f"{service} is not under services: in {config_path}")
    names = [service] if service else list(config.services)
    if not names:
        raise CannotRun(f"{config_path} configures no service")
    receiver = (receiver or f"http://127.0.0.1:{parse_listen(config.listen)[1]}").rstrip("/")
    docker = config.docker.host or "DOCKER_HOST or the local socket"
    return config, token, Where(prometheus, alertmanager, receiver, docker), names


def doctor(config_path: str, *, prometheus: str | None = None, alertmanager: str | None = None,
           receiver: str | None = None, service: str | None = None, as_json: bool = False,
           out: TextIO, err: TextIO) -> int:
    try:
        config, token, where, names = _settings(config_path, prometheus, alertmanager, receiver, service)
        facts = asyncio.run(gather(where.prometheus, where.alertmanager, where.receiver + WEBHOOK_PATH, token,
                                   config.prometheus.timeout))
    except CannotRun as problem:
        one_line = " ".join(part.strip() for part in str(problem).splitlines() if part.strip())
        print(f"autoscaler doctor: cannot run: {one_line}", file=err)
        return EXIT_CANNOT_RUN
    swarm = DockerSwarm(config.docker.host, config.docker.timeout)
    links = [link for name in names for link in chain(name, config, facts, *read_service(swarm, name), where, time.time())]
    healthy = all(link.state is not State.BROKEN for link in links)
    if as_json:
        json.dump({"ok": healthy, "links": [link.as_dict() for link in links]}, out, indent=2)
        print(file=out)
    else:
        render(links, out)
        print(summary(links), file=out)
    return EXIT_OK if healthy else EXIT_BROKEN
