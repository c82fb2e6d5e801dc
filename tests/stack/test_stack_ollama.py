"""The stack deployed as a user would, seen from a client of Ollama: the API through the real
Traefik, Ollama's queue beyond OLLAMA_NUM_PARALLEL, Traefik's live in-flight gauge and request
metrics and the measured container CPU in Prometheus, a new replica that counts once its model
is loaded, and a scale-down that lets the streams it serves finish.

Ollama is the stand-in of scripts/local-images (it runs no model; see
scripts/local-images.d/ollama-standin.py), with the stack's defaults: 4 slots, 20 ms of CPU per
token, a 3 s model load.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from devkit.llm import MODEL, Generation, ollama_request, open_connections

from ..conftest import report
from .deployment import Stack, run, wait_for

pytestmark = pytest.mark.swarm

SLOTS = 4  # stack.yml's default OLLAMA_NUM_PARALLEL
TOKEN_CPU_SECONDS = 0.020  # the stand-in's default CPU per token


def ollama_port(stack: Stack) -> int:
    return int(stack.env["OLLAMA_PORT"])


def ask(stack: Stack, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    return ollama_request(ollama_port(stack), method, path, body, timeout=60)


def prometheus(stack: Stack, query: str) -> list[dict[str, Any]]:
    url = "http://prometheus:9090/api/v1/query?" + urllib.parse.urlencode({"query": query})
    status, text = stack.http("autoscaler", "GET", url)
    assert status == 200, text
    return json.loads(text)["data"]["result"]


def traefik_gauge(stack: Stack, entrypoint: str) -> float | None:
    """traefik_open_connections of an entry point, read live from Traefik's /metrics."""
    status, text = stack.http("autoscaler", "GET", "http://traefik:8080/metrics")
    assert status == 200, text
    return open_connections(text, entrypoint)


@pytest.fixture(scope="module")
def small_reservation() -> Iterator[None]:
    """Two Ollama replicas must fit beside other stacks on this 2-core machine: the deployment
    reads OLLAMA_CPU_RESERVATION from the environment (0.5 by default)."""
    before = os.environ.get("OLLAMA_CPU_RESERVATION")
    os.environ["OLLAMA_CPU_RESERVATION"] = "0.1"
    yield
    if before is None:
        del os.environ["OLLAMA_CPU_RESERVATION"]
    else:
        os.environ["OLLAMA_CPU_RESERVATION"] = before


@pytest.fixture(scope="module")
def routed(small_reservation: None, stack: Stack) -> Stack:
    """The stack once Traefik routes to Ollama (its provider retries until its socket proxy resolves)."""
    def answers() -> bool:
        try:
            return ask(stack, "GET", "/api/version")[0] == 200
        except OSError:
            return False

    wait_for(answers, 90, "Traefik to route to Ollama", 1)
    return stack


def test_the_ollama_api_answers_through_traefik_as_ollama_does(routed: Stack):
    stack = routed
    status, body = ask(stack, "GET", "/api/tags")
    assert status == 200 and MODEL in [m["name"] for m in json.loads(body)["models"]]
    status, body = ask(stack, "GET", "/api/version")
    assert status == 200 and json.loads(body)["version"]
    # the health check loaded the model: it is listed as loaded, with its expiry
    status, body = ask(stack, "GET", "/api/ps")
    assert status == 200 and [m["name"] for m in json.loads(body)["models"]] == [MODEL]
    status, body = ask(stack, "POST", "/api/chat", {
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": 5}})
    lines = [json.loads(line) for line in body.splitlines()]
    assert status == 200 and len(lines) == 6 and all(not c["done"] for c in lines[:5])
    assert lines[-1]["done"] and lines[-1]["eval_count"] == 5 and lines[-1]["done_reason"] == "stop"
    assert "".join(c["message"]["content"] for c in lines).strip()
    status, body = ask(stack, "POST", "/api/generate", {
        "model": MODEL, "prompt": "hi", "stream": False, "options": {"num_predict": 3}})
    answer = json.loads(body)
    assert status == 200 and answer["done"] and answer["eval_count"] == 3 and answer["response"].strip()
    status, body = ask(stack, "POST", "/api/generate", {"model": "no-such-model", "prompt": "hi"})
    assert status == 404 and "not found" in json.loads(body)["error"]


def test_requests_beyond_num_parallel_wait_and_traefik_counts_them_in_flight_from_their_start(routed: Stack):
    stack = routed
    entrypoint = stack.ollama
    before = traefik_gauge(stack, entrypoint)
    assert before == 0, before  # present before any request, and no idle connection counted
    streams = [Generation(ollama_port(stack), tokens=150) for _ in range(SLOTS + 2)]
    wait_for(lambda: sum(s.started for s in streams) >= SLOTS, 60, f"{SLOTS} streams to start")
    started = sum(s.started for s in streams)
    in_flight = traefik_gauge(stack, entrypoint)
    waiting = [s for s in streams if not s.started]
    assert started == SLOTS and len(waiting) == 2, [len(s.chunks) for s in streams]
    assert in_flight == SLOTS + 2  # the two that wait in Ollama's queue are in flight too
    wait_for(lambda: all(s.done for s in streams), 300, "every stream to finish", 1)
    assert all(s.complete() for s in streams), [(s.status, s.error, s.final) for s in streams]
    first_end = min(s.chunks[-1] for s in streams if s not in waiting)
    assert all(s.chunks[0] >= first_end for s in waiting), "a queued request started before a slot was free"
    assert traefik_gauge(stack, entrypoint) == 0
    report(f"stack: {SLOTS + 2} streams on {SLOTS} slots: {SLOTS} served, 2 queued; Traefik's "
           f"traefik_open_connections{{entrypoint=<stack>_ollama}} read {in_flight:.0f} live (queued included)")


def test_traefiks_request_metrics_and_the_measured_ollama_cpu_reach_prometheus(routed: Stack):
    stack = routed
    service = stack.ollama
    series = f'container_cpu_usage_seconds_total{{container_label_com_docker_swarm_service_name="{service}"}}'

    def value(query: str) -> float | None:
        result = prometheus(stack, query)
        return float(result[0]["value"][1]) if result else None

    def scraped_after(moment: float) -> float:
        """The CPU counter from a cAdvisor scrape made after ``moment`` (wall clock)."""
        wait_for(lambda: (value(f"max(timestamp({series}))") or 0) > moment, 60, "a fresh cAdvisor scrape", 1)
        return value(f"sum({series})")

    wait_for(lambda: value(f"sum({series})") is not None, 90, "cAdvisor's CPU series of Ollama in Prometheus", 1)
    cpu_before = scraped_after(time.time())
    status, _ = ask(stack, "POST", "/api/generate", {"model": MODEL, "prompt": "x", "stream": False,
                                                     "options": {"num_predict": 100}})
    assert status == 200
    cpu_after = scraped_after(time.time())
    burned = cpu_after - cpu_before
    assert burned >= 100 * TOKEN_CPU_SECONDS * 0.95, burned  # the CPU the stand-in put on its cgroup
    quota = prometheus(stack, f'container_spec_cpu_quota{{container_label_com_docker_swarm_service_name="{service}"}}')
    assert quota and float(quota[0]["value"][1]) == 200000  # OLLAMA_CPU_LIMIT 2 cores
    assert quota[0]["metric"]["container_label_com_docker_swarm_task_name"].startswith(f"{service}.")
    requests = value(f'sum(traefik_service_requests_total{{service="{service}@swarm"}})')
    assert requests and requests >= 1
    assert prometheus(stack, f'traefik_open_connections{{entrypoint="{service}"}}')
    report(f"stack: a 100-token generation (stand-in: 2.0 CPU-seconds) moved Ollama's container_cpu_usage_seconds_total "
           f"by {burned:.2f}s as the cAdvisor stand-in measured it; Traefik counted {requests:.0f} requests in Prometheus")


def task_states(stack: Stack) -> dict[str, str]:
    return {t["ID"]: t["Status"]["State"]
            for t in stack.client.api.tasks(filters={"service": stack.ollama, "desired-state": "running"})}


def set_replicas(stack: Stack, replicas: int) -> None:
    """A scale and nothing else, as the CLI does it (docker-py's Service.scale re-sends the spec,
    which rolled the running task here: the stack's update_config is start-first)."""
    run("docker", "service", "scale", "--detach", f"{stack.ollama}={replicas}")


def test_a_new_replica_runs_only_once_its_model_is_loaded_and_a_scale_down_lets_its_streams_finish(routed: Stack):
    stack = routed
    # scale-up: the new task is `starting` (health check not yet passed) before `running`
    set_replicas(stack, 2)
    scaled_at = time.monotonic()
    seen: dict[str, list[str]] = {}

    def two_running() -> bool:
        for task, state in task_states(stack).items():
            if not seen.get(task) or seen[task][-1] != state:
                seen.setdefault(task, []).append(state)
        return sum(states[-1] == "running" for states in seen.values()) == 2

    wait_for(two_running, 120, "two running Ollama tasks", 0.2)
    to_running = time.monotonic() - scaled_at
    new = [states for states in seen.values() if states[0] != "running"]
    assert new and "starting" in new[0] and new[0][-1] == "running", seen
    # its model was loaded by the health check, before it got any request
    container = max(stack.containers("ollama"), key=lambda c: stack.client.api.inspect_container(c.id)["Created"])
    health = stack.client.api.inspect_container(container.id)["State"]["Health"]
    assert health["Status"] == "healthy" and health["Log"][0]["ExitCode"] == 0

    # two long streams, one on each replica (Traefik balances round robin), then a scale-down to 1
    wait_for(lambda: traefik_gauge(stack, stack.ollama) == 0, 30, "no request in flight")
    time.sleep(6)  # Traefik's next swarm refresh (refreshSeconds 5) routes to the new replica
    containers = {c.id for c in stack.containers("ollama")}
    streams = [Generation(ollama_port(stack), tokens=400) for _ in range(2)]
    wait_for(lambda: all(s.started for s in streams), 60, "both streams to start")
    set_replicas(stack, 1)
    scaled_down_at = time.monotonic()
    during = []  # new requests while the stopped task drains go to the remaining one
    for _ in range(10):
        during.append(ask(stack, "GET", "/api/version")[0])
        time.sleep(0.5)
    wait_for(lambda: all(s.done for s in streams), 300, "both streams to finish", 1)
    assert all(s.complete() for s in streams), [(s.status, s.error, s.final) for s in streams]
    assert during == [200] * 10, during
    drained = max(s.chunks[-1] for s in streams) - scaled_down_at
    wait_for(lambda: len(stack.containers("ollama")) == 1, 60, "one Ollama container")
    (stopped,) = containers - {c.id for c in stack.containers("ollama")}
    finished = stack.client.api.inspect_container(stopped)["State"]["FinishedAt"]
    finished_at = datetime.fromisoformat(finished[:26].rstrip("Z") + "+00:00").timestamp()
    # the stopped replica served one of the streams: it exited only once that stream had ended
    assert finished_at >= min(s.ended_at for s in streams) - 1.0, (finished, [s.ended_at for s in streams])
    report(f"stack: scale 1 -> 2: the new replica was `starting` until its model answered the health check, "
           f"running {to_running:.1f}s after the scale (stand-in model load 3s, health interval 5s); "
           f"scale 2 -> 1 with 2 streams of 400 tokens in flight: both completed ({drained:.1f}s after the "
           f"scale-down), 10 requests during the drain all 200")
