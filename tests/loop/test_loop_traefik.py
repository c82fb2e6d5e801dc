"""The loop with real requests through the real Traefik: the Ollama stand-in as a swarm service
behind a Traefik service (devkit/llm.py), CPU measured from the host's cgroups by the cAdvisor
stand-in, Prometheus with every rule file loaded and the cpu and inflight signals enabled (as
shipped), Alertmanager, the receiver, the swarm. Timings at 1/12 of the shipped ones.

The generations are long and light on CPU (10 tokens a second, 2 ms of CPU a token), as on a
GPU node: the CPU signal votes for a scale-down throughout, so only a live in-flight signal
can scale up and hold the scale-down back. The rules before the signals were combined fail
this test (they scaled down while every slot was busy). To run it against another rules
directory: LOOP_RULES_DIR=/path/to/rules.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from devkit.llm import Generation, OllamaBehindTraefik, unique_name
from devkit.loop import RULES_DIR, Loop, LoopSettings
from devkit.receiverproc import wait_for

from ..conftest import report

pytestmark = [pytest.mark.swarm, pytest.mark.loop]

RULES = Path(os.environ.get("LOOP_RULES_DIR") or RULES_DIR)
STREAMS, TOKENS = 6, 900  # 90 s each at 10 tokens a second
LOAD_SECONDS = 20  # a model load longer than the scale-up re-send period (12.5s at 1/12)
LIGHT_AND_SLOW = {"OLLAMA_STANDIN_TOKEN_CPU_MS": "2", "OLLAMA_STANDIN_TOKENS_PER_SECOND": "10",
                  "OLLAMA_STANDIN_LOAD_SECONDS": str(LOAD_SECONDS)}
CHANGING = {"scaled_up", "scaled_down", "clamped_to_max", "clamped_to_min"}


def fast_scale_downs(rules_dir: Path) -> dict[str, str]:
    """Every scale-down alert of the rules with a 15s `for` (50s at 1/12), so the test is short."""
    return {
        rule["alert"]: "15s"
        for path in rules_dir.glob("*.rules.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if rule.get("labels", {}).get("scale") == "down"
    }


@pytest.fixture
def llm(local_images):
    with OllamaBehindTraefik(unique_name(), replicas=2, env=LIGHT_AND_SLOW) as deployed:
        yield deployed


def test_long_streamed_generations_through_traefik_scale_up_hold_off_scale_down_while_they_run_and_scale_down_after(llm):
    settings = LoopSettings(
        signals=("cpu", "inflight"), measured=True, scrape={"traefik": llm.metrics_target},
        for_overrides=fast_scale_downs(RULES), rules_dir=RULES, min_replicas=1, max_replicas=4,
    )
    with Loop(llm.name, settings) as loop:
        gauge = f'traefik_open_connections{{entrypoint="{llm.name}"}}'
        wait_for(lambda: loop.value(f'swarm_service:traefik_servers_up:count{{service="{llm.name}"}}') == 2,
                 60, "Traefik's two healthy servers in Prometheus", interval=0.5)
        wait_for(lambda: loop.value(gauge) == 0, 30, "the in-flight gauge in Prometheus", interval=0.5)

        started = time.monotonic()
        streams = [Generation(llm.port, TOKENS) for _ in range(STREAMS)]
        wait_for(lambda: loop.value(gauge) == STREAMS, 30, f"{STREAMS} in flight in Prometheus", interval=0.1)
        seen_up = time.monotonic() - started
        # the rules see them at their next evaluation; an OllamaIdle pending from the quiet
        # seconds before the burst is reset there
        time.sleep(2 * loop.timings["evaluation_interval"])

        # while the streams run: a scale-up, and never a scale-down
        idle_states, desired_seen, running_seen, cpu_votes = set(), [], [], []
        cpu_idle = f'swarm_service:signal_idle:bool{{service="{llm.name}",signal="cpu"}}'
        while not all(s.done for s in streams):
            desired, running = loop.replicas()
            desired_seen.append((time.monotonic() - started, desired))
            running_seen.append((time.monotonic() - started, running))
            idle_states.add(loop.alert_states().get("OllamaIdle"))
            cpu_votes.append(loop.value(cpu_idle) == 1)
            time.sleep(0.5)
        ended = time.monotonic()
        decisions_while_running = [d for d in loop.receiver.decisions() if d["reason"] in CHANGING]
        assert all(s.complete() for s in streams), [(s.status, s.error, s.final) for s in streams]
        assert [d["direction"] for d in decisions_while_running] == ["up"], decisions_while_running
        assert decisions_while_running[0]["to"] == 3  # ceil(2 replicas x (6 / 2 / 4) / 0.5)
        counts = [d for _, d in desired_seen]
        assert counts == sorted(counts), "the replicas went down while every stream ran"
        assert idle_states <= {None}, idle_states  # OllamaIdle was never even pending
        scaled_up_after = next(t for t, d in desired_seen if d >= 3)
        cpu_idle_share = sum(cpu_votes) / len(cpu_votes)
        # the new replica counts once its model is loaded: until then the receiver holds re-sent scale-ups
        third_running = next(t for t, r in running_seen if r >= 3)
        held = [d for d in loop.receiver.decisions() if d["reason"] == "not_converged"]
        assert held and all(d["direction"] == "up" for d in held), loop.receiver.decisions()
        assert third_running - scaled_up_after >= LOAD_SECONDS - 1

        wait_for(lambda: loop.value(gauge) == 0, 30, "no request in flight in Prometheus", interval=0.1)
        seen_down = time.monotonic() - ended
        wait_for(lambda: loop.replicas() == (1, 1), 180, "the scale-down to 1 after the streams", interval=0.5)
        scaled_down_after = time.monotonic() - ended
        downs = [d for d in loop.receiver.decisions() if d["reason"] in CHANGING and d["direction"] == "down"]
        assert downs and downs[-1]["to"] == 1
        scrape = loop.timings["scrape_interval"]
    report(
        f"loop with Traefik: {STREAMS} streams of {TOKENS} tokens (90s, little CPU) on 2 replicas; "
        f"traefik_open_connections in Prometheus read {STREAMS} {seen_up:.1f}s after they started and 0 "
        f"{seen_down:.1f}s after they ended (scrape {scrape}s); scaled 2 -> 3 about {scaled_up_after:.0f}s in, "
        f"OllamaIdle never pending while they ran (the CPU voted idle in {cpu_idle_share:.0%} of the samples); "
        f"the third replica ran {third_running - scaled_up_after:.0f}s after the scale-up (model load {LOAD_SECONDS}s, "
        f"health interval 5s), {len(held)} re-sent scale-up(s) answered not_converged meanwhile; 3 -> 1 {scaled_down_after:.0f}s "
        f"after they ended (OllamaIdle for 15s, cooldown {loop.timings['scale_down_cooldown']:.0f}s)"
    )

