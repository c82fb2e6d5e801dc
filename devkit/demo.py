"""``python -m devkit.demo``: the whole loop on this machine, with a live timeline a person can follow.

It deploys a stand-in service, starts the harness (load simulator, Prometheus with the shipped
rules, Alertmanager with the shipped routing, the receiver; see devkit/loop.py),
plays a demand profile (ramp up, plateau, drop), prints what happens, a summary, and removes
everything it started (``--keep`` leaves it running until Ctrl-C for amtool and curl).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import docker

from .loop import Loop, LoopSettings
from .standin import STANDIN_IMAGE, create_standin, remove_standin, wait_running
from .waiting import wait_for


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    demand: Callable[[float], float]  # seconds into the phase -> total CPU cores asked for


def profile(scale: float) -> list[Phase]:
    """Ramp up, plateau, drop; lengths follow the loop's time scale (1/12 by default)."""
    k = scale * 12
    return [
        Phase("quiet", 10 * k, lambda t: 0.3),
        Phase("ramp up", 20 * k, lambda t: 0.3 + (2.4 - 0.3) * t / (20 * k)),
        Phase("plateau", 70 * k, lambda t: 2.4),
        Phase("drop", 80 * k, lambda t: 0.15),
    ]


def _fmt_alerts(states: dict[str, str]) -> str:
    return ", ".join(f"{name}={state}" for name, state in sorted(states.items())) or "-"


class Demo:
    def __init__(self, args: argparse.Namespace, out=sys.stdout):
        self.args = args
        self.out = out
        self.client = docker.from_env(timeout=30)
        self.service = None

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def deploy(self) -> None:
        info = self.client.info()
        if info["Swarm"]["LocalNodeState"] != "active":
            raise SystemExit("the engine is not in swarm mode: run scripts/setup.sh (or scripts/demo.sh)")
        self.client.images.get(STANDIN_IMAGE)
        for old in self.client.services.list(filters={"name": self.args.service}):
            if old.name == self.args.service:
                self.say(f"removing a previous {self.args.service}")
                old.remove()
                wait_for(lambda: not self.client.services.list(filters={"name": self.args.service}), 30, "the old service to go")
        self.service = create_standin(self.client, self.args.service, 1, cpu_limit=1.0,
                                      labels={"swarm-autoscaler.demo": "true"})
        wait_running(self.client, self.args.service, 1, 60)

    def remove(self) -> None:
        if self.service is not None:
            remove_standin(self.client, self.args.service)
        self.client.close()

    def run(self) -> int:
        settings = LoopSettings(time_scale=self.args.time_scale, max_replicas=self.args.max_replicas)
        self.deploy()
        try:
            with Loop(self.args.service, settings) as loop:
                self.header(loop)
                summary = self.play(loop)
                self.summary(loop, summary)
                if self.args.keep:
                    self.keep(loop)
        finally:
            self.remove()
        return 0

    def header(self, loop: Loop) -> None:
        t = loop.timings
        self.say(f"service {self.args.service}: 1 replica, 1 CPU each, bounds {loop.settings.min_replicas}..{loop.settings.max_replicas}")
        self.say(f"prometheus {loop.prometheus.url}  alertmanager {loop.alertmanager.url}  receiver {loop.receiver.url}")
        self.say(
            f"timings at 1/{round(1 / loop.settings.time_scale)} of the shipped ones: scrape {t['scrape_interval']}s, "
            f"evaluation {t['evaluation_interval']}s, for {t['high_for']}s up / {t['low_for']}s down, "
            f"group_wait {t['group_wait']:.2f}s, re-send {t['up_resend_period']}s, cooldowns {t['scale_up_cooldown']}s up / "
            f"{t['scale_down_cooldown']}s down; reaction floor {loop.reaction_floor():.1f}s (for + group_wait; "
            f"scrape and evaluation add up to {loop.reaction_ceiling_extra():.1f}s, the rate window more)"
        )
        self.say(f"{'time':>6}  {'phase':<8} {'demand':>7} {'util':>5}  {'replicas':>8}  alerts")

    def play(self, loop: Loop) -> dict[str, object]:
        start = time.monotonic()
        seen = 0
        first_step: float | None = None
        surge_at: float | None = None
        last_print = -10.0
        for phase in profile(self.args.time_scale):
            phase_start = time.monotonic()
            while (elapsed := time.monotonic() - phase_start) < phase.seconds:
                demand = phase.demand(elapsed)
                loop.set_demand(demand)
                now = time.monotonic() - start
                if surge_at is None and demand > 0.7:
                    surge_at = now
                desired, running = loop.replicas()
                if first_step is None and running > 1:
                    first_step = now
                decisions = loop.receiver.decisions()
                for d in decisions[seen:]:
                    self.say(f"{now:5.0f}s  decision: {d['direction']} {d['from']} -> {d['to']} ({d['reason']})")
                seen = len(decisions)
                if now - last_print >= 2:
                    util = loop.utilisation()
                    util_text = "  -  " if util is None else f"{util:5.2f}"
                    self.say(f"{now:5.0f}s  {phase.name:<8} {demand:7.2f} {util_text}  {running:>3}/{desired:<4}  {_fmt_alerts(loop.alert_states())}")
                    last_print = now
                time.sleep(0.5)
        return {"first_step": first_step, "surge_at": surge_at, "seconds": time.monotonic() - start}

    def summary(self, loop: Loop, run: dict[str, object]) -> None:
        decisions = loop.receiver.decisions()
        reasons = Counter(d["reason"] for d in decisions)
        moves = [f"{d['from']}->{d['to']}" for d in decisions if d["from"] != d["to"] and d["to"] is not None]
        desired, running = loop.replicas()
        self.say("summary:")
        self.say(f"  ran {run['seconds']:.0f}s; replica moves {', '.join(moves) or 'none'}; now {running}/{desired}")
        if run["first_step"] is not None and run["surge_at"] is not None:
            self.say(f"  demand above the scale-up threshold of one replica (0.70) at {run['surge_at']:.0f}s, second replica "
                     f"running at {run['first_step']:.0f}s: reaction {run['first_step'] - run['surge_at']:.0f}s "
                     f"(floor {loop.reaction_floor():.1f}s + up to {loop.reaction_ceiling_extra():.1f}s of alignment + the rate window)")
        self.say(f"  decisions by reason: {dict(reasons)}")

    def keep(self, loop: Loop) -> None:
        self.say("--keep: everything stays up until Ctrl-C. Try:")
        self.say(f"  curl -s {loop.receiver.url}/status")
        self.say(f"  amtool --alertmanager.url={loop.alertmanager.url} alert query")
        self.say(f"  amtool --alertmanager.url={loop.alertmanager.url} silence add service={self.args.service} --duration=10m --comment=freeze")
        self.say(f"  curl -X POST '{loop.sim_url}/demand?cores=2.4'   # the load simulator's demand")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.say("stopping")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", default="demo_ollama", help="name of the stand-in Swarm service (default demo_ollama)")
    parser.add_argument("--time-scale", type=float, default=1 / 12, help="shipped timings multiplied by this (default 1/12)")
    parser.add_argument("--max-replicas", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave everything running until Ctrl-C")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.demo", description="run the whole loop on this machine with a live timeline")
    add_arguments(parser)
    return Demo(parser.parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
