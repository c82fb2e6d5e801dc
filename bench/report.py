"""The results as Markdown: printed, saved in bench/results/latest.md and put into docs/benchmarks.md.

docs/benchmarks.md is written by hand except between the markers below, which each run replaces.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from . import growth, latency, loopbench, throughput, watchbench
from .common import table

BEGIN = "<!-- bench results: begin (written by bench/run.sh; edit outside the markers) -->"
END = "<!-- bench results: end -->"

TARGETS = {"latency_ratio": 1.2, "rate": 1500.0, "p99_ms": 20.0, "memory_mb": 60.0, "idle_mb": 50.0, "watch_ms": 50.0}


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares y = a + b·x: (a, b)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False)) / sxx if sxx else 0.0
    return my - b * mx, b


def growth_fits(cells: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per number of services: fixed ms per payload, µs per alert, and the log-log slope 100 -> 1,000 alerts."""
    out = {}
    for s in sorted({c["services"] for c in cells}):
        pts = sorted((c["alerts"], c["median"]) for c in cells if c["services"] == s)
        a, b = linear_fit([p[0] for p in pts], [p[1] for p in pts])
        by = dict(pts)
        slope = math.log10(by[1000] / by[100]) if 100 in by and 1000 in by else float("nan")
        out[s] = {"fixed_ms": a, "us_per_alert": 1000 * b, "slope_100_1000": slope}
    return out


def _neighbours(r: dict[str, Any]) -> list[str]:
    n = r.get("neighbours")
    if not n:
        return []
    parts = [f"{name}: {v['cores']:.2f} (max {v['max_cores']:.2f}), {v['other_dockerds']} other dockerd{'s' if v['other_dockerds'] != 1 else ''}"
             for name, v in n.items() if name not in ("setup", "cleanup")]
    return ["- during the run, processes outside it (other dockerds and everything else; the local engine's "
            "containerd and tasks left out) kept busy, in cores on average: " + "; ".join(parts)]


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def headline(r: dict[str, Any]) -> str:
    rows = []
    if "latency" in r:
        m = r["latency"]["methods"]
        ratio = m["receiver"]["ratio_to_floor"]
        rows.append([
            "1. webhook to scale, real engine",
            f"receiver within {TARGETS['latency_ratio']:g}× the engine's floor (median)",
            f"{m['receiver']['answer']['median']:.1f} ms vs {m['engine floor']['answer']['median']:.1f} ms: {ratio:.2f}×; "
            f"the engine alone for the same calls {m['engine, receiver' + chr(39) + 's calls']['ratio_to_floor']:.2f}×",
            _met(ratio <= TARGETS["latency_ratio"]),
        ])
        if "gate_added_ms" in r["latency"]:
            added = r["latency"]["gate_added_ms"]
            rows.append([
                "1. the docker gate's cost", "stated",
                f"receiver through the gate {m['receiver through the docker gate']['answer']['median']:.1f} ms vs "
                f"{m['receiver']['answer']['median']:.1f} ms on the socket: +{added['median']:.1f} ms median "
                f"(+{added['p90']:.1f} ms p90)", "shown",
            ])
    if "throughput" in r:
        for swarm, res in r["throughput"].items():
            runs = {f"{c} clients": v for c, v in res["closed"].items()}
            runs[f"open {res['open']['offered_rate']:.0f}/s"] = res["open"]
            ok = [k for k, v in runs.items() if v["rate"] >= 0.98 * TARGETS["rate"] and v["latency_ms"]["p99"] < TARGETS["p99_ms"]]
            best = max(runs.items(), key=lambda kv: kv[1]["rate"])
            note = ""
            if swarm == "real engine" and "latency" in r:
                raw = r["latency"]["read_costs"]["raw HTTP"]["median_ms"]
                note = f" (the engine alone: one read, inspect + task list, takes {raw:.2f} ms raw, so one connection reads at most {1000 / raw:,.0f}/s)"
            rows.append([
                f"2. no-op decisions, {swarm}",
                f"≥ {TARGETS['rate']:,.0f}/s with p99 < {TARGETS['p99_ms']:.0f} ms",
                f"best {best[1]['rate']:,.0f}/s ({best[0]}, p99 {best[1]['latency_ms']['p99']:.1f} ms); "
                + (f"target held at: {', '.join(ok)}" if ok else "target held at no load level") + note,
                _met(bool(ok)),
            ])
    if "growth" in r:
        fits = growth_fits(r["growth"]["fake swarm"])
        slopes = ", ".join(f"{s} svc {f['slope_100_1000']:.2f}" for s, f in fits.items())
        rows.append(["3. growth (fake swarm)", "linear in alerts", f"log-log slope 100→1,000 alerts: {slopes}", "shown"])
    if "memory" in r:
        mem = r["memory"]["real engine"]
        rows.append([
            "4. memory, real engine", f"idle ≤ {TARGETS['idle_mb']:.0f} MB, after the runs ≤ {TARGETS['memory_mb']:.0f} MB",
            f"idle {mem['idle']:.1f} MB, after the runs {mem['after']:.1f} MB, peak {mem['peak']:.1f} MB",
            _met(mem["idle"] <= TARGETS["idle_mb"] and mem["after"] <= TARGETS["memory_mb"]),
        ])
    if "watch" in r:
        w = r["watch"]
        rows.append([
            "6. events to copy", f"median ≤ {TARGETS['watch_ms']:.0f} ms",
            f"median {w['median_ms']:.1f} ms, p90 {w['p90_ms']:.1f} ms over {w['rounds']} changes made outside",
            _met(w["median_ms"] <= TARGETS["watch_ms"]),
        ])
    if "loop" in r:
        d, f = r["loop"]["desired_replicas"], r["loop"]["fixed step"]
        rows.append([
            "5. the loop", "reaction near the floor; fewer steps with desired_replicas",
            f"reaction {_s(d['first_running'])} / {_s(f['first_running'])} (floor {d['reaction_floor']:.1f} s); "
            f"1→{d['needed']}: {d['steps']} steps {_s(d['to_needed'])} vs {f['steps']} steps {_s(f['to_needed'])}",
            "shown",
        ])
    return table(["question", "target", "measured", ""], rows)


def _s(v: float | None) -> str:
    return "never" if v is None else f"{v:.1f} s"


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    parts = [
        f"Run of {m['date']} ({r['elapsed_s'] / 60:.1f} min, `bash bench/run.sh{' ' + r['args'] if r['args'] else ''}`).",
        "",
        f"- machine: {m['cpu']}, {m['memory_gb']} GB RAM; {m['os']}",
        f"- {m['docker']}; Python {m['python']}; dockerd processes on the machine: {m['dockerd_processes']}",
        f"- load average (1, 5, 15 min) before: {', '.join(map(str, r['load_before']))}; after: {', '.join(map(str, r['load_after']))}",
        f"- busiest processes in the second before the run: {'; '.join(r['busy_before']) or 'none above 2 % of a core'}",
        *_neighbours(r),
        "",
        "### Headline",
        "",
        headline(r),
    ]
    if "latency" in r:
        lat = r["latency"]
        parts += ["", f"### 1. Webhook to scale ({lat['rounds']} changes per way, alternating up and down between 1 and 2 replicas)",
                  "", latency.print_tables(lat)]
    if "throughput" in r:
        parts += ["", "### 2. No-op decisions (scale-up inside a 1 h cooldown)", "", throughput.print_table(r["throughput"])]
    if "growth" in r:
        parts += ["", "### 3. Growth (one payload at a time)", "", growth.print_table(r["growth"]), ""]
        fit_rows = []
        for swarm, cells in r["growth"].items():
            for s, f in growth_fits(cells).items():
                fit_rows.append([swarm, s, f["fixed_ms"], f["us_per_alert"], f"{f['slope_100_1000']:.2f}"])
        parts.append(table(["swarm", "services", "fit: fixed ms", "fit: µs per alert", "log-log slope 100→1,000 alerts"], fit_rows))
    if "memory" in r:
        rows = [[swarm, v["idle"], v["after"], v["peak"]] for swarm, v in r["memory"].items()]
        parts += ["", "### 4. Memory (resident size, MB)", "", table(["receiver process", "idle", "after the runs", "peak (VmHWM)"], rows)]
    if "watch" in r:
        parts += ["", "### 6. Events to copy (a change made outside, until decisions see it)", "", watchbench.print_table(r["watch"])]
    if "loop" in r:
        lp = r["loop"]["desired_replicas"]
        t = lp["timings"]
        parts += [
            "", f"### 5. The loop (demand step 0.3 → {lp['demand']} cores on 1-CPU tasks; {lp['needed']} needed)", "",
            loopbench.print_table(r["loop"]), "",
            f"Timings (shipped × 1/12): scrape {t['scrape_interval']} s, evaluation {t['evaluation_interval']} s, "
            f"`for` {t['high_for']} s, group_wait {t['group_wait']:.2f} s, re-send period {t['up_resend_period']} s, "
            f"scale-up cooldown {t['scale_up_cooldown']} s. Reaction floor = `for` + group_wait; scrape and evaluation "
            f"alignment add up to {lp['alignment']:.1f} s, and the 5 s rate window must mostly fill before the average "
            "crosses 0.70. Floor for the steps = reaction floor + one re-send period per further step.",
        ]
    return "\n".join(parts) + "\n"


def update_doc(doc: Path, text: str) -> bool:
    """Replace the text between the markers; False when the doc has no markers."""
    if not doc.exists():
        return False
    current = doc.read_text()
    if BEGIN not in current or END not in current:
        return False
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n\n{text}\n{END}{tail}")
    return True
