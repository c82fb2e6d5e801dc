"""The figures: one PNG per question, written into docs/ as bench-*.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

BLUE, ORANGE, GREEN, GREY, RED, PURPLE = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f", "#d62728", "#9467bd"
METHOD_COLOURS = {"engine floor": GREY, "engine, receiver's calls": PURPLE, "docker SDK": ORANGE, "receiver": BLUE,
                  "receiver through the docker gate": GREEN}


def _style() -> None:
    plt.rcParams.update({
        "figure.dpi": 110, "font.size": 10, "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.3, "axes.titleweight": "bold", "axes.titlesize": 11,
    })


def _save(fig: Any, path: Path, machine: str) -> Path:
    fig.text(0.99, 0.005, machine, ha="right", va="bottom", fontsize=7, color=GREY)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def latency(results: dict[str, Any], path: Path, machine: str) -> Path:
    _style()
    methods = results["methods"]
    names = list(methods)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.25, 1]})

    data = [methods[n]["samples_ms"] for n in names]
    box = ax.boxplot(data, vert=False, whis=(1, 99), showfliers=True, widths=0.55, patch_artist=True,
                     medianprops={"color": "black", "linewidth": 1.6}, flierprops={"markersize": 3, "alpha": 0.5})
    for patch, n in zip(box["boxes"], names, strict=False):
        patch.set_facecolor(METHOD_COLOURS.get(n, BLUE))
        patch.set_alpha(0.55)
    ax.set_yticks(range(1, len(names) + 1), [n.replace(", ", ",\n") for n in names])
    top = max(methods[n]["answer"]["p99"] for n in names) * 1.25
    for i, n in enumerate(names, start=1):
        m = methods[n]
        beyond = sum(1 for v in m["samples_ms"] if v > top)
        more = f"; {beyond} beyond, max {m['answer']['max']:.0f}" if beyond else ""
        ax.text(top * 1.02, i, f"median {m['answer']['median']:.1f} ms, {m['ratio_to_floor']:.2f}× the floor\n"
                f"p99 {m['answer']['p99']:.1f}{more}", va="center", fontsize=8)
    ax.set_xlim(0, top * 1.55)
    running = ", ".join(f"{n} {methods[n]['to_running']['median']:.0f} ms" for n in ("engine floor", "receiver"))
    ax.set_xlabel(f"ms from the request until the engine accepted the change\n"
                  f"(after a scale-up the new task runs, median from the request: {running})")
    ax.set_title(f"One scale change, {len(names)} ways (box: p25-p75, whiskers: p1-p99)")

    raw = methods["engine, receiver's calls"]["parts_mean_ms"]
    floor = methods["engine floor"]["parts_mean_ms"]
    rec = results["receiver_metrics"]
    docker_sum = sum(rec[op]["per_change_ms"] for op in ("inspect", "update"))
    client = methods["receiver"]["answer"]["mean"]
    bars = {  # the record is written after the receiver answers: drawn after its answer
        "engine floor\n(raw)": [("read", floor["inspect"]), ("update", floor["update"])],
        "receiver's calls\n(raw)": [("update", raw["update"]),
                                     ("record", sum(v for k, v in raw.items() if k.startswith("record")))],
        "receiver\n(its /metrics)": [("read", rec["inspect"]["per_change_ms"]),
                                     ("update", rec["update"]["per_change_ms"]),
                                     ("own work", rec["webhook"]["mean_ms"] - docker_sum),
                                     ("HTTP", client - rec["webhook"]["mean_ms"]),
                                     ("record", rec["write_record"]["per_change_ms"])],
    }
    colours = {"read": GREEN, "update": BLUE, "record": ORANGE, "own work": RED, "HTTP": GREY}
    seen = set()
    for y, parts in enumerate(bars.values()):
        left = 0.0
        for part, ms in parts:
            bx.barh(y, ms, left=left, color=colours[part], label=None if part in seen else part, alpha=0.85)
            if ms > 1.5:
                bx.text(left + ms / 2, y, f"{ms:.1f}", ha="center", va="center", fontsize=8, color="white")
            seen.add(part)
            left += ms
        bx.text(left + 0.5, y, f"{left:.1f} ms", va="center", fontsize=8)
    bx.set_yticks(range(len(bars)), list(bars))
    bx.invert_yaxis()
    bx.set_xlabel("mean ms per change")
    bx.set_title("Where the time goes")
    bx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=5, fontsize=8, frameon=False)
    bx.set_xlim(0, bx.get_xlim()[1] * 1.12)
    fig.tight_layout()
    return _save(fig, path, machine)


def throughput(results: dict[str, Any], path: Path, machine: str, target_rate: float = 1000, target_p99: float = 20) -> Path:
    _style()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    swarms = list(results)
    colours = [BLUE, GREEN]
    cats = [f"{c} client{'s' if int(c) > 1 else ''}" for c in next(iter(results.values()))["closed"]]
    cats.append(f"open loop\n{next(iter(results.values()))['open']['offered_rate']:.0f}/s offered")
    width = 0.8 / len(swarms)
    for i, swarm in enumerate(swarms):
        runs = list(results[swarm]["closed"].values()) + [results[swarm]["open"]]
        xs = [j + (i - (len(swarms) - 1) / 2) * width for j in range(len(runs))]
        rates = [r["rate"] for r in runs]
        p99 = [r["latency_ms"]["p99"] for r in runs]
        ax.bar(xs, rates, width, color=colours[i], label=swarm, alpha=0.85)
        for x, v in zip(xs, rates, strict=False):
            ax.text(x, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
        bx.bar(xs, p99, width, color=colours[i], label=swarm, alpha=0.85)
        for x, v in zip(xs, p99, strict=False):
            bx.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(target_rate, color=RED, linestyle="--", linewidth=1, label=f"target: at least {target_rate:,.0f}/s")
    bx.axhline(target_p99, color=RED, linestyle="--", linewidth=1, label=f"target: under {target_p99:.0f} ms")
    bx.legend(frameon=False, fontsize=8, loc="upper left")
    for a in (ax, bx):
        a.set_xticks(range(len(cats)), cats)
    ax.set_ylabel("decisions per second")
    ax.set_title("No-op decisions (cooldown): throughput")
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    bx.set_yscale("log")
    bx.set_ylabel("p99 latency, ms (log)")
    bx.set_title("… and their p99")
    fig.tight_layout()
    return _save(fig, path, machine)


def growth(results: dict[str, list[dict[str, Any]]], path: Path, machine: str) -> Path:
    """Left: ms per payload against alerts, one line per number of services, with the straight-line
    fit a + b·alerts drawn through them (on log-log a line flat while the fixed part dominates,
    then of slope 1). Right: the same against services, for 100 and 1,000 alerts."""
    from .report import linear_fit

    _style()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = {1: BLUE, 10: ORANGE, 100: GREEN}
    styles = ["-", "--"]
    markers = ["o", "s"]
    for k, (swarm, cells) in enumerate(results.items()):
        for s in sorted({c["services"] for c in cells}):
            pts = sorted((c["alerts"], c["median"]) for c in cells if c["services"] == s)
            xs, ys = zip(*pts, strict=False)
            a, b = linear_fit(list(xs), list(ys))
            c = colours.get(s, GREY)
            ax.plot(xs, ys, markers[k % 2], color=c, markersize=7,
                    label=f"{s} service{'s' if s > 1 else ''}, {swarm}: {a:.1f} ms + {1000 * b:.1f} µs × alerts")
            fx = [xs[0] * (xs[-1] / xs[0]) ** (i / 40) for i in range(41)]
            ax.plot(fx, [a + b * x for x in fx], styles[k % 2], color=c, linewidth=1.2, alpha=0.8)
        for n_alerts in (100, 1000):
            pts = sorted((c["services"], c["median"]) for c in cells if c["alerts"] == n_alerts)
            if len(pts) > 1:
                xs, ys = zip(*pts, strict=False)
                bx.plot(xs, ys, styles[k % 2], marker=markers[k % 2], color=BLUE if n_alerts == 100 else RED,
                        label=f"{n_alerts:,} alerts, {swarm}")
    for axis, (x0, x1), label in ((ax, (10, 1000), "alerts"), (bx, (1, 100), "services")):
        # Through the lowest curve's last point, so the curves can be seen to bend into it.
        y1 = min(line.get_ydata()[-1] for line in axis.get_lines())
        axis.plot([x0, x1], [y1 * x0 / x1, y1], ":", color=GREY, linewidth=1.5, label="slope 1: time ∝ " + label)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_ylabel("ms per payload (median)")
        axis.legend(fontsize=7.5, frameon=False, loc="upper left")
    ax.set_xlabel("alerts in the payload (dealt over the services)")
    ax.set_title("Against alerts: measured (points), fixed + per-alert fit (lines)")
    bx.set_xlabel("services the alerts name")
    bx.set_title("Against services (each read and decided once)")
    fig.tight_layout()
    return _save(fig, path, machine)


def memory(results: dict[str, Any], path: Path, machine: str, target: float = 80) -> Path:
    _style()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    labels, values, colours = [], [], []
    for swarm, m in results.items():
        for key, name, colour in (("idle", "idle", GREEN), ("after", "after the runs", BLUE), ("peak", "peak", ORANGE)):
            labels.append(f"{swarm}\n{name}")
            values.append(m[key])
            colours.append(colour)
    xs = range(len(values))
    ax.bar(xs, values, color=colours, alpha=0.85)
    for x, v in zip(xs, values, strict=False):
        ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(target, color=RED, linestyle="--", linewidth=1)
    ax.text(len(values) - 0.5, target, f"target {target:.0f} MB", color=RED, ha="right", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("resident size, MB")
    ax.set_ylim(0, max(target, max(values)) * 1.15)
    ax.set_title("Receiver process memory")
    fig.tight_layout()
    return _save(fig, path, machine)


def loop(results: dict[str, Any], path: Path, machine: str) -> Path:
    _style()
    fig, ax = plt.subplots(figsize=(10, 4.6))
    colours = {"desired_replicas": BLUE, "fixed step": ORANGE}
    first = next(iter(results.values()))
    floor = first["reaction_floor"]
    ax.axvspan(0, floor, color=GREY, alpha=0.15)
    ax.axvspan(floor, floor + first["alignment"], color=GREY, alpha=0.06)
    ax.text(floor / 2, first["needed"] + 0.35, f"reaction floor\n{floor:.1f} s", ha="center", fontsize=8, color=GREY)
    ax.text(floor + first["alignment"] / 2, first["needed"] + 0.35, f"+ ≤ {first['alignment']:.1f} s\nalignment",
            ha="center", fontsize=7, color=GREY)
    end = 0.0
    for variant, r in results.items():
        ts = [p[0] for p in r["points"]]
        running = [p[2] for p in r["points"]]
        desired = [p[1] for p in r["points"]]
        end = max(end, ts[-1])
        c = colours.get(variant, GREY)
        ax.step(ts, running, where="post", color=c, linewidth=2, label=f"{variant}: running ({' '.join(r['moves'])})")
        ax.step(ts, desired, where="post", color=c, linewidth=1, linestyle="--", alpha=0.7, label=f"{variant}: asked for")
        moves = [d for d in r["decisions"] if d["from"] != d["to"] and d["to"] is not None]
        ax.plot([d["t"] for d in moves], [d["to"] for d in moves], "v", color=c, markersize=7)
        if r["to_needed"] is not None:
            ax.annotate(f"{r['needed']} running at {r['to_needed']:.1f} s", (r["to_needed"], r["needed"]),
                        xytext=(5, -28 if variant == "fixed step" else 8), textcoords="offset points", fontsize=8, color=c)
    ax.axvline(0, color=RED, linewidth=1)
    ax.text(0.3, 0.6, f"demand {first['demand']} cores", color=RED, fontsize=8, rotation=90, va="bottom")
    ax.set_xlim(-3, end + 1)
    ax.set_ylim(0.5, first["needed"] + 1)
    ax.set_yticks(range(1, first["needed"] + 1))
    ax.set_xlabel("seconds after the demand step (shipped timings × 1/12; ▼ a decision)")
    ax.set_ylabel("replicas")
    ax.set_title(f"The whole loop: from 1 to {first['needed']} replicas")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    fig.tight_layout()
    return _save(fig, path, machine)
