"""``python -m bench``: every benchmark in one run (``bash bench/run.sh`` sets up and calls this).

Order: stand-in services; the receiver on the real engine and the same app on the in-memory
swarm, both idle (memory); 1. webhook-to-scale latency; 2. no-op decisions; 3. growth;
4. memory after all that; the receivers stop; 5. the whole loop twice. Then the tables are
printed, saved (bench/results/latest.json, latest.md), plotted (docs/bench-*.png) and put into
docs/benchmarks.md. Everything the run creates on the engine is removed, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devkit.receiverproc import GateProcess, ReceiverProcess

from . import growth, latency, loopbench, plots, report, throughput, watchbench
from .common import (
    ROOT,
    BenchServices,
    Neighbours,
    bench_services,
    busy_processes,
    load_average,
    machine,
    rss_mb,
)
from .fakeserver import FakeReceiverProcess

RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs"
SECTIONS = ("latency", "throughput", "growth", "watch", "loop")


def receiver_config(fast: str, noop: str, grow: list[str]) -> dict[str, Any]:
    """``fast``: zero cooldowns and no convergence wait (a scale-up follows a scale-down within
    the 5 s a new task settles in: the call path is measured, not the policy), 1..2 replicas;
    ``noop`` and ``grow``: inside a 1 h cooldown."""
    services: dict[str, Any] = {
        fast: {"min_replicas": 1, "max_replicas": 2, "scale_up_cooldown": 0, "scale_down_cooldown": 0, "convergence_wait": 0},
        noop: {"min_replicas": 1, "max_replicas": 4, "scale_up_cooldown": "1h", "scale_down_cooldown": "1h"},
    }
    for name in grow:
        services[name] = {"min_replicas": 0, "max_replicas": 4, "scale_up_cooldown": "1h", "scale_down_cooldown": "1h"}
    return {"services": services, "docker": {"timeout": "20s"}, "reconcile_interval": 0}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)} "
                   "(memory is measured with any of the first three)")
    p.add_argument("--rounds", type=int, default=200, help="changes per way in the latency benchmark (default 200)")
    p.add_argument("--duration", type=float, default=5, help="seconds per load level in the throughput benchmark (default 5)")
    p.add_argument("--growth-budget", type=float, default=1.5, help="seconds per growth cell (default 1.5)")
    p.add_argument("--growth-services", type=int, default=100, help="real services for the growth benchmark (default 100)")
    p.add_argument("--quick", action="store_true", help="a smoke run: few rounds, short loads; figures not for the doc")
    p.add_argument("--no-doc", action="store_true", help="do not touch docs/ (tables and results only)")
    p.add_argument("--render", metavar="JSON", help="measure nothing: tables, plots and the doc from a saved run")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.growth_budget, args.growth_services = 8, 1.5, 0.2, 10
    args.sections = [s for s in args.only.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


def say(text: str) -> None:
    print(text, flush=True)


def measure_receivers(args: argparse.Namespace, services: BenchServices, workdir: Path, results: dict[str, Any],
                      neighbours: Neighbours) -> None:
    wanted = set(args.sections)
    needs_real = wanted & {"latency", "throughput", "growth"}
    say("creating stand-in services")
    lat = {k: services.create(f"lat-{k}", 1) for k in ("floor", "calls", "sdk", "receiver", "gate")} if "latency" in wanted else {}
    noop = services.create("noop", 1, in_cooldown=True)
    n_grow = args.growth_services if "growth" in wanted else 0
    grow = [services.create(f"grow{i:03d}", 0, in_cooldown=True, converge=False) for i in range(n_grow)]
    fast = lat["receiver"].name if lat else "bench-unused"
    real_config = receiver_config(fast, noop.name, [g.name for g in grow])
    fake_noop, fake_grow = "fake-noop", [f"fake-grow{i:03d}" for i in range(100)]
    fake_config = receiver_config("fake-fast", fake_noop, fake_grow)
    if not needs_real:
        return
    with ReceiverProcess(workdir / "real", real_config) as real, FakeReceiverProcess(workdir / "fake", fake_config) as fake, \
            contextlib.ExitStack() as gated_stack:
        gated = None
        if lat:  # the same receiver behind the docker gate, for what the gate adds
            gate_config = receiver_config(lat["gate"].name, "bench-unused", [])
            gate = gated_stack.enter_context(GateProcess(workdir / "gate", gate_config))
            gated = gated_stack.enter_context(ReceiverProcess(
                workdir / "gated", {**gate_config, "docker": {**gate_config["docker"], "host": gate.docker_host}}))
        time.sleep(2)
        idle = {"real engine": rss_mb(real.proc.pid), "fake swarm": rss_mb(fake.proc.pid)}
        say(f"idle: receiver {idle['real engine']['rss']:.1f} MB, fake-swarm receiver {idle['fake swarm']['rss']:.1f} MB")
        if "latency" in wanted:
            neighbours.section("1. latency")
            say(f"1. webhook to scale: {args.rounds} changes per way")
            results["latency"] = latency.run(real, lat, args.rounds, gated=gated)
            say(latency.print_tables(results["latency"]))
        if "throughput" in wanted:
            neighbours.section("2. no-op decisions")
            say(f"2. no-op decisions: {args.duration:.0f} s per load level")
            results["throughput"] = {
                "real engine": throughput.run(real, noop.name, args.duration, real=True),
                "fake swarm": throughput.run(fake, fake_noop, args.duration, real=False),
            }
            say(throughput.print_table(results["throughput"]))
        if "growth" in wanted:
            neighbours.section("3. growth")
            say("3. growth")
            results["growth"] = {
                "fake swarm": growth.run(fake, fake_grow, args.growth_budget),
                "real engine": growth.run(real, [g.name for g in grow], args.growth_budget),
            }
            say(growth.print_table(results["growth"]))
        after = {"real engine": rss_mb(real.proc.pid), "fake swarm": rss_mb(fake.proc.pid)}
        results["memory"] = {
            k: {"idle": idle[k]["rss"], "after": after[k]["rss"], "peak": after[k]["peak"]} for k in idle
        }
        say("4. memory: " + "; ".join(f"{k} idle {v['idle']:.1f} MB, after {v['after']:.1f} MB, peak {v['peak']:.1f} MB"
                                      for k, v in results["memory"].items()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render:
        write(json.loads(Path(args.render).read_text()), args, save=False)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every cleanup below runs
    started = time.monotonic()
    results: dict[str, Any] = {"args": " ".join(sys.argv[1:] if argv is None else argv), "machine": machine(),
                               "load_before": load_average(), "busy_before": busy_processes()}
    say(f"machine: {results['machine']}")
    say(f"load average {results['load_before']}; busiest: {results['busy_before']}")
    if any(int(line.split("%")[0]) >= 10 for line in results["busy_before"]):
        say("warning: the machine is not quiet (see above); the figures will show it")
    workdir = Path(tempfile.mkdtemp(prefix="autoscaler-bench-"))
    try:
        with bench_services() as services, Neighbours() as neighbours:
            neighbours.section("setup")
            measure_receivers(args, services, workdir, results, neighbours)
            if "watch" in args.sections:
                neighbours.section("6. events to copy")
                say(f"6. events to copy: {args.rounds} changes made outside")
                results["watch"] = watchbench.run(services, args.rounds)
                say(watchbench.print_table(results["watch"]))
            if "loop" in args.sections:
                neighbours.section("5. loop")
                say("5. the whole loop, twice (about 3 minutes)")
                results["loop"] = loopbench.run(services)
                say(loopbench.print_table(results["loop"]))
            neighbours.section("cleanup")
        results["neighbours"] = neighbours.summary()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["load_after"] = load_average()
    results["elapsed_s"] = time.monotonic() - started
    write(results, args)
    return 0


def write(results: dict[str, Any], args: argparse.Namespace, save: bool = True) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = "quick" if args.quick else "latest"
    if save:
        (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    text = report.markdown(results)
    (RESULTS / f"{stem}.md").write_text(text)
    say("\n" + text)
    to_docs = not (args.quick or args.no_doc)
    label = f"{results['machine']['cpu']}, {results['machine']['date']}"
    makers = {"latency": plots.latency, "throughput": plots.throughput, "growth": plots.growth,
              "memory": plots.memory, "loop": plots.loop}
    for key, make in makers.items():
        if key in results:
            path = DOCS / f"bench-{key}.png" if to_docs else RESULTS / f"{stem}-{key}.png"
            say(f"wrote {make(results[key], path, label)}")
    if not to_docs:
        say(f"results in {RESULTS}/{stem}*; docs/ not touched")
        return
    if report.update_doc(DOCS / "benchmarks.md", text):
        say("updated docs/benchmarks.md")
    else:
        say("docs/benchmarks.md has no result markers: tables left in bench/results/latest.md")


if __name__ == "__main__":
    sys.exit(main())
