"""Scale to zero and wake on request, on the stack deployed as a user turns it on: min_replicas 0
in the receiver's configuration, the shipped `wake` settings, real Traefik routing to Ollama
while it has a task and to the receiver's wake listener (the fallback route on its labels) while
it has none, the live rules with OllamaUnused.

Changed from the shipped files, as an operator tuning for a test would: OllamaUnused's `for`
(IDLE_AFTER) 30m -> 1m, scale_down_cooldown 5m -> 30s, the scale-down route not muted in
business hours and repeated every 1m, and the stand-in's streams paced (a GPU's decoding speed)
so that a long generation does not burn this machine's CPU.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devkit.llm import MODEL, Generation
from receiver.state import PAUSE_LABEL

from ..conftest import report
from .deployment import Stack, StackEdits, scale_downs_unmuted, wait_for

pytestmark = pytest.mark.swarm

IDLE_AFTER = "1m"
TRAEFIK_REFRESH = 5  # stack.yml: --providers.swarm.refreshSeconds=5


def _receiver(config: dict[str, Any]) -> None:
    (policy,) = config["services"].values()
    policy.update(min_replicas=0, scale_down_cooldown="30s")
    policy["wake"].update(wake_timeout="2m")


STACK_EDITS = StackEdits(
    receiver=_receiver,
    alertmanager=scale_downs_unmuted,
    rules=(("for: 30m", f"for: {IDLE_AFTER}"),),
    compose='version: "3.8"\nservices:\n  ollama:\n    environment:\n      OLLAMA_STANDIN_TOKENS_PER_SECOND: "20"\n',
)


def post(stack: Stack, agent: str = "ollama-python/0.4", tokens: int = 8,
         timeout: float = 180) -> tuple[int, dict[str, str], bytes, float]:
    """One /api/generate through Traefik, as a client: (status, headers, body, seconds)."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", int(stack.env["OLLAMA_PORT"]), timeout=timeout)
    try:
        body = {"model": MODEL, "prompt": "why is the sky blue?", "stream": False, "options": {"num_predict": tokens}}
        conn.request("POST", "/api/generate", body=json.dumps(body),
                     headers={"Content-Type": "application/json", "User-Agent": agent})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read(), time.monotonic() - start
    finally:
        conn.close()


def replicas(stack: Stack) -> int:
    return int(stack.service("ollama").attrs["Spec"]["Mode"]["Replicated"]["Replicas"])


def asleep(stack: Stack) -> None:
    """Ollama at 0 replicas, its last task gone and Traefik's route to it dropped."""
    if replicas(stack) != 0:
        stack.service("ollama").scale(0)
    wait_for(lambda: not stack.containers("ollama"), 120, "the Ollama tasks to drain and stop", 1)
    time.sleep(2 * TRAEFIK_REFRESH)  # Traefik's Swarm provider sees the service without a task


def last_decision(stack: Stack) -> dict[str, Any]:
    status, body = stack.http("autoscaler", "GET", "http://127.0.0.1:8080/status")
    assert status == 200, body
    entry = next(e for e in json.loads(body)["services"] if e["service"] == stack.ollama)
    return entry["last_decision"] or {}


def timings(header: str) -> dict[str, float]:
    """Server-Timing: name;desc="...";dur=ms, ... -> {name: seconds}."""
    parts = (item.split(";") for item in header.split(","))
    return {p[0].strip(): float(next(x for x in p if x.strip().startswith("dur=")).split("=")[1]) / 1000 for p in parts}


@pytest.fixture
def asleep_service(stack: Stack) -> Iterator[None]:
    asleep(stack)
    yield
    stack.service("ollama").update(labels={k: v for k, v in (stack.service("ollama").attrs["Spec"].get("Labels") or {})
                                           .items() if k != PAUSE_LABEL})


def _wall(stamp: str) -> float:
    """Docker's RFC 3339 time with nanoseconds -> epoch seconds."""
    from datetime import datetime

    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0")[:6])


def test_a_first_request_through_traefik_wakes_the_service_from_zero_and_is_answered_by_it(stack: Stack, asleep_service):
    sent = time.time()
    status, headers, body, seconds = post(stack)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["done"] is True and answer["model"].startswith(MODEL.split(":")[0])
    assert headers["X-Autoscaler-Wake"] == "woken"
    assert replicas(stack) == 1
    decision = last_decision(stack)
    assert (decision["reason"], decision["from"], decision["to"]) == ("woken", 0, 1)
    parts = timings(headers["Server-Timing"])
    assert parts["decision"] < parts["task"]  # the wait is the task's, not the receiver's
    # The task's part, from Docker: its container's start, then the health check's preload (the
    # model load) that makes Swarm call it running.
    state = stack.client.api.inspect_container(stack.container("ollama").id)["State"]
    first_ok = min((h for h in state["Health"]["Log"] if h["ExitCode"] == 0), key=lambda h: _wall(h["Start"]))
    started, load = _wall(state["StartedAt"]) - sent, _wall(first_ok["End"]) - _wall(first_ok["Start"])
    healthy = _wall(first_ok["End"]) - sent
    line = (f"wake from 0 through Traefik: answered in {seconds:.1f}s: decision {parts['decision'] * 1000:.0f} ms; "
            f"container started at {started:.1f}s; the health check's first run at {healthy - load:.1f}s "
            f"(its interval) loaded the model in {load:.1f}s; a task running (Swarm) at "
            f"{parts['decision'] + parts['task']:.1f}s; health path {parts['health'] * 1000:.0f} ms; the request "
            f"itself {seconds - sum(parts.values()):.2f}s")
    print("\n" + line)
    report(line)


def test_thirty_first_requests_with_max_pending_10_get_10_answers_and_20_refusals_with_retry_after(
        stack: Stack, asleep_service):
    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(lambda _: post(stack), range(30)))
    statuses = sorted(r[0] for r in results)
    assert statuses == [200] * 10 + [503] * 20, statuses
    refused = [r for r in results if r[0] == 503]
    assert all(r[1].get("Retry-After") == "10" for r in refused)
    assert {json.loads(r[2])["reason"] for r in refused} == {"busy"}
    slowest_refusal = max(r[3] for r in refused)
    report(f"30 first requests, max_pending 10: 10 answered (slowest {max(r[3] for r in results if r[0] == 200):.1f}s), "
           f"20 refused 503 with Retry-After within {slowest_refusal:.2f}s")


def test_a_request_from_a_listed_health_checker_does_not_wake_the_service(stack: Stack, asleep_service):
    status, headers, body, _ = post(stack, agent="kube-probe/1.29")
    assert status == 503 and headers.get("Retry-After") == "10"
    assert json.loads(body)["reason"] == "health_checker"
    time.sleep(3)
    assert replicas(stack) == 0 and not stack.containers("ollama")


def test_a_paused_or_frozen_service_is_not_woken_and_the_client_is_told_why(stack: Stack, asleep_service):
    service = stack.service("ollama")
    labels = dict(service.attrs["Spec"].get("Labels") or {})
    service.update(labels={**labels, PAUSE_LABEL: "true"})
    status, _, body, _ = post(stack)
    assert (status, json.loads(body).get("reason")) == (503, "paused"), body
    service.reload()
    service.update(labels=labels)
    am = ["--alertmanager", "http://alertmanager:9093"]
    code, out = stack.exec("autoscaler", ["autoscaler", "freeze", stack.ollama, "--for", "10m", "--comment", "test", *am])
    assert code == 0, out
    try:
        # At once: a wake reads the silences afresh, it does not wait for the next poll.
        status, _, body, _ = post(stack)
        answer = json.loads(body)
        assert (status, answer.get("reason")) == (503, "frozen"), answer
        assert "until" in answer["details"]
    finally:
        code, out = stack.exec("autoscaler", ["autoscaler", "unfreeze", stack.ollama, *am])
        assert code == 0, out
    assert replicas(stack) == 0
    status, _, body, _ = post(stack)  # unfrozen: the next request wakes it, at once too
    assert status == 200, body


def test_idle_for_idle_after_scales_to_zero_and_a_request_in_flight_prevents_it(stack: Stack):
    if replicas(stack) == 0:
        assert post(stack)[0] == 200  # awake, through the wake listener
    wait_for(lambda: stack.containers("ollama") and stack.health("ollama") == "healthy", 120, "Ollama up", 1)
    # A long streamed generation (about 170 s at 20 tokens/s) holds the service while it runs.
    generation = Generation(int(stack.env["OLLAMA_PORT"]), tokens=3400)
    held_for = 150.0  # IDLE_AFTER 1m + rule and notification delays + cooldown 30s, well past
    deadline = time.monotonic() + held_for
    while time.monotonic() < deadline:
        assert replicas(stack) == 1, "scaled while a request was in flight"
        assert generation.error is None, generation.error
        time.sleep(5)
    assert not generation.done, "the generation ended before the check did"
    wait_for(lambda: generation.done, 120, "the generation to end", 1)
    assert generation.complete(), (generation.status, generation.error, generation.final)
    ended = time.monotonic()
    wait_for(lambda: replicas(stack) == 0, 300, "OllamaUnused to take the service to 0", 2)
    decision = last_decision(stack)
    assert (decision["reason"], decision["to"]) == ("scaled_down", 0), decision
    report(f"scale to zero: held at 1 for {held_for:.0f}s while a generation streamed; "
           f"0 replicas {time.monotonic() - ended:.0f}s after it ended (IDLE_AFTER {IDLE_AFTER})")


def test_a_receiver_restarting_while_requests_are_held_answers_them_at_once(stack: Stack, asleep_service):
    # The wake takes seconds (a task's start, its first health check 5s later, the model's load):
    # the receiver restarts in the middle of it, holding three requests.
    with ThreadPoolExecutor(3) as pool:
        held = [pool.submit(post, stack) for _ in range(3)]
        wait_for(lambda: replicas(stack) == 1, 60, "the wake decision", 0.2)
        restarted = time.monotonic()
        stack.service("autoscaler").force_update()
        results = [f.result(timeout=120) for f in held]
    answered = time.monotonic() - restarted
    assert [r[0] for r in results] == [503] * 3, results
    assert {json.loads(r[2])["reason"] for r in results} == {"stopping"}, results
    report(f"receiver restarted with 3 requests held: all answered 503 'stopping' within {answered:.1f}s "
           f"of the restart (nothing hangs)")
    wait_for(lambda: stack.health("autoscaler") == "healthy", 120, "the receiver back", 1)


def test_warm_requests_never_pass_through_the_wake_listener(stack: Stack):
    if replicas(stack) == 0:
        assert post(stack)[0] == 200  # awake, through the wake listener
    # Warm: a task runs and Traefik's Swarm provider (refreshing every TRAEFIK_REFRESH s) routes to
    # it. A fixed wait is not enough: the test before leaves a task woken just before the receiver's
    # restart, which may still be loading its model.
    def direct() -> bool:
        status, headers, _, _ = post(stack)
        return status == 200 and "X-Autoscaler-Wake" not in headers  # not a 50x of Traefik's or the listener's

    wait_for(direct, 180, "Ollama's own route in Traefik", TRAEFIK_REFRESH)
    time.sleep(2 * TRAEFIK_REFRESH)  # every Traefik refresh since sees the running task

    def wake_requests() -> float:
        status, text = stack.http("autoscaler", "GET", "http://127.0.0.1:8080/metrics")
        assert status == 200
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("autoscaler_wake_requests_total{"))

    before = wake_requests()
    warm = [post(stack) for _ in range(20)]
    assert all(r[0] == 200 and "X-Autoscaler-Wake" not in r[1] for r in warm), \
        [(r[0], r[1].get("X-Autoscaler-Wake"), round(r[3], 2)) for r in warm]
    assert wake_requests() == before  # not one of them reached the receiver
    median = sorted(r[3] for r in warm)[len(warm) // 2]
    report(f"warm requests through Traefik: 20 of 20 went to Ollama's own route, none to the wake listener "
           f"(median {median * 1000:.0f} ms, the stand-in's 8 tokens included): the fallback adds nothing to them")
