"""The whole loop on one machine: load simulator -> Prometheus -> Alertmanager -> receiver -> swarm.

Shared by the end-to-end tests and ``autoscaler demo``. Everything runs for real on loopback
ports (Prometheus and Alertmanager from Debian's packages, the receiver as its own process)
against the local dockerd in swarm mode, with the project's shipped files:

The rendering step (see ``render.py``) shortens the shipped timings by one factor,
``LoopSettings.time_scale`` (default 1/12: 2m becomes 10s), applied alike to the rules' ``for``
and group interval, Alertmanager's group_wait / group_interval / repeat_interval, Prometheus'
resend delay and the receiver's cooldowns, so their arithmetic (docs/tuning.md) holds as
shipped. The rate window ``[1m]`` becomes ``LoopSettings.rate_window`` and the service selector
the loop's own service. Business hours are moved to exclude "now" unless a test asks for them.

Every rule file of ``rules/`` is loaded, as the stack loads them; the signal switch enables
``LoopSettings.signals`` (the CPU alone by default). With ``measured=True`` the CPU comes from
the cAdvisor stand-in reading this host's cgroups instead of the load simulator, and
``LoopSettings.scrape`` adds scrape jobs (Traefik in front of a real Ollama stand-in: see
``llm.py``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import yaml

from .llm import start_cadvisor
from .loadsim import LoadSimulator, serve
from .procs import Running, start_alertmanager, start_prometheus
from .receiverproc import ReceiverProcess
from .render import (
    SIGNAL_SWITCH,
    parse_duration_ms,
    render_alertmanager_config,
    render_rules,
    resend_period_ms,
    route_timings,
)

ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = ROOT / "rules"
CPU_RULES = "ollama-cpu.rules.yml"
SHIPPED_ALERTMANAGER = ROOT / "alertmanager" / "alertmanager.yml"
SHIPPED_SELECTOR = "ollama_ollama"
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

# The receiver's defaults for the loop's service, before scaling by time_scale.
SHIPPED_COOLDOWNS = {"scale_up_cooldown": 120.0, "scale_down_cooldown": 300.0, "convergence_wait": 300.0}


def _seconds(duration: str) -> float:
    return parse_duration_ms(duration) / 1000


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def business_hours(now: datetime, inside: bool) -> tuple[list[str], tuple[str, str]]:
    """Weekdays and times (UTC) of a business-hours window that holds ``now``, or never does."""
    today = WEEKDAYS[now.weekday()]
    if not inside:
        return [WEEKDAYS[(now.weekday() + 3) % 7]], ("00:00", "00:01")
    start = max(now - timedelta(hours=1), now.replace(hour=0, minute=0))
    end_hour = now + timedelta(hours=1)
    end = "24:00" if end_hour.date() != now.date() else end_hour.strftime("%H:%M")
    return [today], (start.strftime("%H:%M"), end)


@dataclass
class LoopSettings:
    time_scale: float = 1 / 12
    scrape_interval: float = 1.0
    rate_window: str = "5s"
    min_replicas: int = 1
    max_replicas: int = 5
    limit_cores: float = 1.0
    for_overrides: dict[str, str] = field(default_factory=dict)  # alert -> for, on top of the scaling
    business_hours_now: bool = False  # True: "now" is inside the business-hours window
    receiver_overrides: dict[str, Any] = field(default_factory=dict)  # into the service's policy
    signals: tuple[str, ...] = ("cpu",)  # what the signal switch enables for the loop's service
    measured: bool = False  # CPU from the cAdvisor stand-in (this host's cgroups), not the load simulator
    scrape: dict[str, str] = field(default_factory=dict)  # more scrape jobs: job -> host:port
    rules_dir: Path = RULES_DIR  # every *.rules.yml in it is loaded


class Loop:
    """Start with ``with Loop(service, settings) as loop:``; everything stops on exit."""

    def __init__(self, service: str, settings: LoopSettings | None = None, workdir: Path | None = None):
        self.service = service
        self.settings = settings or LoopSettings()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="autoscaler-loop-"))
        self.api = docker.from_env(timeout=20).api
        self.sim = LoadSimulator(service, limit_cores=self.settings.limit_cores, docker_client=self.api)
        self.prometheus: Running | None = None
        self.alertmanager: Running | None = None
        self.receiver: ReceiverProcess | None = None
        self._sim_server: Any = None
        self.cadvisor: Running | None = None
        self.sim_url = ""
        self.timings: dict[str, float] = {}

    # -- rendering ---------------------------------------------------------------------------

    def scaled(self, duration: str) -> str:
        return _ms(_seconds(duration) * self.settings.time_scale)

    def _rule_files(self) -> list[Path]:
        files = sorted(self.settings.rules_dir.glob("*.rules.yml"))
        cpu = self.settings.rules_dir / CPU_RULES
        assert cpu in files, f"no {CPU_RULES} in {self.settings.rules_dir}"
        return [cpu, *(f for f in files if f != cpu)]

    def _fors(self) -> dict[str, str]:
        """Every alert's `for`, scaled, with the settings' overrides on top."""
        fors = {
            r["alert"]: self.scaled(r["for"])
            for path in self._rule_files()
            for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"] if "alert" in r and "for" in r
        }
        unknown = set(self.settings.for_overrides) - set(fors)
        if unknown:
            raise ValueError(f"no alert named {', '.join(sorted(unknown))} in {self.settings.rules_dir}")
        fors.update(self.settings.for_overrides)
        return fors

    def render(self, path: Path) -> str:
        """One rule file for this loop: scaled timings, its window, its service, its signals."""
        text = path.read_text()
        rules = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
        alerts = {r["alert"] for r in rules if "alert" in r}
        has_switch = any(r.get("record") == SIGNAL_SWITCH for r in rules)
        fors = {a: f for a, f in self._fors().items() if a in alerts}
        interval = self.scaled(yaml.safe_load(text)["groups"][0].get("interval", "1m"))
        return render_rules(
            path,
            for_overrides=fors,
            interval=interval,
            range_overrides={"1m": self.settings.rate_window} if "[1m]" in text else None,
            selectors={SHIPPED_SELECTOR: self.service},
            signals=self.settings.signals if has_switch else None,
        )

    def rules_text(self) -> str:
        """The CPU rule file, rendered (the other files: ``rule_texts``)."""
        path = self._rule_files()[0]
        fors = self._fors()
        shipped = yaml.safe_load(path.read_text())
        self.timings.update(
            evaluation_interval=_seconds(self.scaled(shipped["groups"][0].get("interval", "1m"))),
            high_for=_seconds(fors["OllamaHighCPU"]),
            # the combined scale-down (OllamaLowCPU in rules from before the signals were combined)
            low_for=_seconds(fors.get("OllamaIdle") or fors["OllamaLowCPU"]),
        )
        return self.render(path)

    def rule_texts(self) -> list[str]:
        return [self.rules_text(), *(self.render(path) for path in self._rule_files()[1:])]

    def alertmanager_text(self, webhook_url: str, token_file: Path) -> str:
        weekdays, times = business_hours(datetime.now(UTC), self.settings.business_hours_now)
        text = render_alertmanager_config(
            SHIPPED_ALERTMANAGER, webhook_url, token_file, timing_scale=self.settings.time_scale,
            time_zone="UTC", business_weekdays=weekdays, business_times=times,
        )
        up = route_timings(yaml.safe_load(text), {"alertname": "OllamaHighCPU", "scale": "up"})
        self.timings.update(
            group_wait=_seconds(up["group_wait"]),
            group_interval=_seconds(up["group_interval"]),
            up_resend_period=resend_period_ms(up["group_interval"], up["repeat_interval"]) / 1000,
        )
        return text

    def prometheus_config(self, sim_port: int, alertmanager_port: int) -> str:
        s = self.settings
        interval = _ms(s.scrape_interval)
        self.timings["scrape_interval"] = s.scrape_interval
        return json.dumps({
            "global": {"scrape_interval": interval, "evaluation_interval": _ms(self.timings["evaluation_interval"])},
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in {"cadvisor": f"127.0.0.1:{sim_port}", **s.scrape}.items()
            ],
        })

    def receiver_config(self) -> dict[str, Any]:
        s = self.settings
        policy: dict[str, Any] = {"min_replicas": s.min_replicas, "max_replicas": s.max_replicas}
        policy.update({k: v * s.time_scale for k, v in SHIPPED_COOLDOWNS.items()})
        policy.update(s.receiver_overrides)
        self.timings.update(scale_up_cooldown=policy["scale_up_cooldown"], scale_down_cooldown=policy["scale_down_cooldown"])
        return {"services": {self.service: policy}, "docker": {"timeout": "20s"}, "reconcile_interval": 0}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Loop:
        try:
            if self.settings.measured:
                self.cadvisor = start_cadvisor(self.workdir)
                sim_port = self.cadvisor.port
            else:
                self._sim_server, sim_port = serve(self.sim)
                self.sim_url = f"http://127.0.0.1:{sim_port}"
            self.receiver = ReceiverProcess(self.workdir / "receiver", self.receiver_config())
            am_dir = self.workdir / "alertmanager"
            am_dir.mkdir(exist_ok=True)
            self.alertmanager = start_alertmanager(self.alertmanager_text(self.receiver.webhook_url, self.receiver.token_file), am_dir)
            prom_dir = self.workdir / "prometheus"
            prom_dir.mkdir(exist_ok=True)
            rules = self.rule_texts()
            resend = self.scaled("1m")
            self.prometheus = start_prometheus(
                self.prometheus_config(sim_port, self.alertmanager.port), rules, prom_dir,
                extra_args=[f"--rules.alert.resend-delay={resend}"],
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in (self.prometheus, self.alertmanager, self.cadvisor):
            if proc is not None:
                proc.stop()
        if self.receiver is not None:
            self.receiver.close()
        if self._sim_server is not None:
            self._sim_server.shutdown()
            self._sim_server.server_close()
        self.api.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Loop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observing and driving -----------------------------------------------------------------

    def reaction_floor(self) -> float:
        """The least time from utilisation crossing the threshold to the notification:
        the `for` of the scale-up alert plus Alertmanager's group_wait. Scrape and evaluation
        alignment add up to one interval each on top (``reaction_ceiling_extra``)."""
        t = self.timings
        return t["high_for"] + t["group_wait"]

    def reaction_ceiling_extra(self) -> float:
        t = self.timings
        return t["scrape_interval"] + t["evaluation_interval"]

    def set_demand(self, cores: float) -> None:
        self.sim.set_demand(cores)

    def replicas(self) -> tuple[int, int]:
        """(desired, running) as the swarm says now."""
        service = self.api.inspect_service(self.service)
        desired = service["Spec"]["Mode"]["Replicated"]["Replicas"]
        tasks = self.api.tasks(filters={"service": self.service, "desired-state": "running"})
        return desired, sum(1 for t in tasks if t["Status"]["State"] == "running")

    def query(self, promql: str) -> list[dict[str, Any]]:
        assert self.prometheus is not None
        url = f"{self.prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single value of an instant query, or None when it is empty."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def utilisation(self) -> float | None:
        result = self.query(f'swarm_service:cpu_utilisation:avg_ratio{{service="{self.service}"}}')
        return float(result[0]["value"][1]) if result else None

    def alert_states(self) -> dict[str, str]:
        """Scaling alerts of the service in Prometheus: name -> pending | firing."""
        assert self.prometheus is not None
        with urllib.request.urlopen(f"{self.prometheus.url}/api/v1/alerts", timeout=10) as r:
            alerts = json.loads(r.read())["data"]["alerts"]
        return {a["labels"]["alertname"]: a["state"] for a in alerts if a["labels"].get("service") == self.service}

    def alertmanager_metric(self, name: str, **labels: str) -> float:
        from .receiverproc import metric_value

        assert self.alertmanager is not None
        with urllib.request.urlopen(f"{self.alertmanager.url}/metrics", timeout=10) as r:
            return metric_value(r.read().decode(), name, **labels)
