"""5. The whole loop: reaction time and the way from 1 to N replicas, ``desired_replicas`` vs a fixed step.

The end-to-end harness (devkit/loop.py: load simulator, real Prometheus with the
shipped rules, real Alertmanager with the shipped routing, the receiver, the real swarm; every
shipped timing times 1/12) runs twice on a fresh stand-in service (1 CPU per task):

- as shipped: the alerts carry ``desired_replicas`` (``ceil(running × utilisation / 0.5)``);
- with a fixed step: ``FixedStepLoop`` renders the same rules without that annotation, so
  each notification asks for one ``scale_up_step``. Nothing else differs.

Demand rests at 0.3 cores, then steps to ``demand`` cores, which ``needed`` tasks carry below
the 0.70 threshold. Each run records the replicas over time, the receiver's decisions and the
floor the intervals allow.
"""

from __future__ import annotations

import math
import time
from typing import Any

import yaml

from devkit.loop import Loop, LoopSettings
from receiver.timeutil import parse_rfc3339

from .common import BenchServices, table

CHANGING = {"scaled_up", "scaled_down", "clamped_to_max", "clamped_to_min"}


class FixedStepLoop(Loop):
    """The shipped loop, with the ``desired_replicas`` annotation left out of the rendered alerts."""

    def rules_text(self) -> str:
        rules = yaml.safe_load(super().rules_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule.get("annotations", {}).pop("desired_replicas", None)
        return yaml.safe_dump(rules, sort_keys=False)


def _epoch(stamp: str) -> float:
    return parse_rfc3339(stamp)


def run_once(services: BenchServices, variant: str, demand: float, needed: int, timeout: float = 180) -> dict[str, Any]:
    service = services.create("loop-desired" if variant == "desired_replicas" else "loop-fixed", 1, cpu_limit=1.0)
    loop_class = Loop if variant == "desired_replicas" else FixedStepLoop
    with loop_class(service.name, LoopSettings()) as loop:
        loop.set_demand(0.3)
        time.sleep(8)  # a quiet baseline longer than the rate window (5s)
        wall0, t0 = time.time(), time.monotonic()
        loop.set_demand(demand)
        points: list[tuple[float, int, int]] = [(0.0, 1, 1)]
        reached: float | None = None
        settle_until = math.inf
        while time.monotonic() - t0 < timeout and time.monotonic() < settle_until:
            desired, running = loop.replicas()
            now = time.monotonic() - t0
            if points[-1][1:] != (desired, running):
                points.append((now, desired, running))
            if reached is None and running >= needed and desired >= needed:
                reached = now
                # Stay one more re-send period: does anything ask for more?
                settle_until = time.monotonic() + loop.timings["up_resend_period"] + 2
            time.sleep(0.1)
        points.append((time.monotonic() - t0, *loop.replicas()))
        decisions = [
            {"t": round(_epoch(d["at"]) - wall0, 3), "from": d["from"], "to": d["to"], "reason": d["reason"]}
            for d in loop.receiver.decisions()
        ]
        timings = dict(loop.timings)
        floor = loop.reaction_floor()
        alignment = loop.reaction_ceiling_extra()
    moves = [d for d in decisions if d["reason"] in CHANGING]
    first_running = next((t for t, _, r in points if r >= 2), None)
    steps = len(moves)
    return {
        "variant": variant,
        "service": service.name,
        "demand": demand,
        "needed": needed,
        "points": points,
        "decisions": decisions,
        "moves": [f"{m['from']}->{m['to']}" for m in moves],
        "steps": steps,
        "first_decision": moves[0]["t"] if moves else None,
        "first_running": first_running,
        "to_needed": reached,
        "final": points[-1][1:],
        "reaction_floor": floor,
        "alignment": alignment,
        # The least time to N: the reaction floor, then one re-send period per further step.
        "to_needed_floor": floor + max(0, steps - 1) * timings["up_resend_period"],
        "timings": timings,
    }


def run(services: BenchServices, demand: float = 2.4, needed: int = 4) -> dict[str, Any]:
    return {variant: run_once(services, variant, demand, needed) for variant in ("desired_replicas", "fixed step")}


def print_table(results: dict[str, Any]) -> str:
    rows = []
    for variant, r in results.items():
        times = [d["t"] for d in r["decisions"] if d["reason"] in CHANGING]
        gaps = ", ".join(f"{b - a:.1f}" for a, b in zip(times, times[1:], strict=False)) or "-"
        rows.append([
            variant, " ".join(r["moves"]) or "-", r["steps"], gaps,
            _s(r["first_decision"]), _s(r["first_running"]), f"{r['reaction_floor']:.1f} s (+ up to {r['alignment']:.1f} s)",
            _s(r["to_needed"]), f"{r['to_needed_floor']:.1f} s",
        ])
    return table(["alerts ask for", "moves", "steps", "s between steps", "first decision", "2nd replica running", "reaction floor",
                  f"{results['desired_replicas']['needed']} running", "floor for the steps"], rows)


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"
