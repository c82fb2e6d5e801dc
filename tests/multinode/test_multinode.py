"""The receiver on a real multi-node swarm: placement, two receivers, a lost leader, lost quorum,
a lost worker. Each test starts from a healthy cluster (conftest ``healthy``); the ones that
kill nodes come last so that a failure there costs the others nothing."""

from __future__ import annotations

import threading
import time

import pytest

from devkit.multinode import Cluster

from ..conftest import alert, payload, report
from ..processes import post_many, reasons, wait_for
from .conftest import converge, replicas_of, set_ollama_nodes, tasks_by_node

pytestmark = pytest.mark.multinode


def answer(receiver, service: str, **kw) -> tuple[int, str]:
    """POST one scale-up notification; (HTTP status, reason or error kind)."""
    status, body = receiver.post(payload(alert(service, "up", **kw)))
    if not body.get("decisions"):
        return status, body.get("kind", body.get("error", ""))
    decision = body["decisions"][0]
    return status, decision["reason"] if status == 200 else decision.get("details", {}).get("kind", decision["reason"])


def service_status(receiver, service: str) -> dict:
    return next(s for s in receiver.get_json("/status")["services"] if s["service"] == service)


def test_a_pinned_service_scales_onto_the_labelled_nodes_only_and_spreads_over_them(cluster: Cluster, pinned_service, receiver_on):
    set_ollama_nodes(cluster, "w1", "w2", "m3")
    service = pinned_service(1)
    receiver = receiver_on(cluster.node("m1"), service)  # a manager that runs none of the tasks

    started = time.monotonic()
    assert answer(receiver, service, desired="6") == (200, "scaled_up")
    converge(cluster, service, 6)
    took = time.monotonic() - started

    placed = tasks_by_node(cluster, service)
    assert placed == {"w1": 2, "w2": 2, "m3": 2}
    # The convergence guard counts the tasks of every node, not the receiver's own.
    # (/status reads the receiver's watched copy, whose tasks are re-listed every second.)
    status = wait_for(lambda: (s := service_status(receiver, service))["replicas_running"] == 6 and s, 10,
                      "the receiver to count 6 running tasks over every node")
    assert status["replicas_desired"] == 6
    report(f"multi-node placement: 1 -> 6 replicas pinned to node.labels.ollama==true over w1, w2, m3 -> {placed} "
           f"(none on m1, m2), running in {took:.1f}s; the receiver on m1 counts 6 running")


def receivers_on_leader_and_follower(cluster: Cluster, pinned_service, receiver_on, timeout: str):
    """A service of 1 replica on the workers; a receiver on the leader and one on a follower."""
    set_ollama_nodes(cluster, "w1", "w2")
    service = pinned_service(1)
    leader = cluster.leader()
    follower = next(m for m in cluster.managers if m is not leader)
    return (service, leader, follower,
            receiver_on(leader, service, timeout=timeout), receiver_on(follower, service, timeout=timeout))


async def test_two_receivers_on_two_managers_fed_the_same_notifications_make_exactly_one_step(cluster: Cluster, pinned_service, receiver_on):
    service, leader, follower, a, b = receivers_on_leader_and_follower(cluster, pinned_service, receiver_on, "20s")

    answers = await post_many([a, b], payload(alert(service, "up")), 50)

    counts = reasons(answers)
    assert counts == {"scaled_up": 1, "cooldown": 99}
    assert replicas_of(cluster, service) == 2
    conflicts = (a.stop() + b.stop()).count('"update_conflict"')
    report(f"two receivers on two managers ({leader.name} leader, {follower.name} follower): 2 x 50 concurrent "
           f"notifications -> {counts}, {conflicts} version conflicts re-read, replicas 1 -> 2")


class LeaderWatch:
    """Notes when a surviving manager first names a new leader (one poller per manager)."""

    def __init__(self, cluster: Cluster, old: str):
        self.started = time.monotonic()
        self.elected: tuple[str, float] | None = None
        self._found = threading.Event()
        self._lock = threading.Lock()
        survivors = [m for m in cluster.managers if m.name != old]
        self._threads = [threading.Thread(target=self._poll, args=(cluster, m, old), daemon=True) for m in survivors]
        for thread in self._threads:
            thread.start()

    def _poll(self, cluster: Cluster, via, old: str) -> None:
        while not self._found.is_set() and time.monotonic() - self.started < 90:
            try:
                entries = cluster.swarm_nodes(via=via, timeout=1)
            except RuntimeError:
                time.sleep(0.1)
                continue
            leader = next((cluster.name_of(e["ID"]) for e in entries if e.get("ManagerStatus", {}).get("Leader")), None)
            if leader and leader != old:
                with self._lock:
                    if self.elected is None:
                        self.elected = (leader, time.monotonic() - self.started)
                self._found.set()
            time.sleep(0.1)

    def stop(self) -> None:
        self._found.set()
        for thread in self._threads:
            thread.join(5)


def retry_until_answered(receiver, service: str, since: float) -> list[tuple[int, str]]:
    """Alertmanager's retries of one notification: again every 0.5s until a 200."""
    tries: list[tuple[int, str]] = []
    while not tries or tries[-1][0] != 200:
        assert time.monotonic() - since < 90, tries
        tries.append(answer(receiver, service))
        if tries[-1][0] != 200:
            time.sleep(0.5)
    return tries


def test_when_the_leader_dies_the_surviving_receiver_scales_and_the_orphaned_one_answers_503(cluster: Cluster, pinned_service, receiver_on):
    service, leader, survivor, orphaned, surviving = receivers_on_leader_and_follower(cluster, pinned_service, receiver_on, "3s")

    cluster.kill(leader.name)
    watch = LeaderWatch(cluster, leader.name)
    try:
        # The receiver whose manager is gone: 503 (Alertmanager retries), not ready, still alive.
        assert answer(orphaned, service) == (503, "unavailable")
        assert orphaned.status_of("/-/ready") == 503
        assert orphaned.status_of("/-/healthy") == 200
        # The notification retried at the surviving receiver: 503 while there is no leader, then one step.
        tries = retry_until_answered(surviving, service, watch.started)
        scaled_after = time.monotonic() - watch.started
        wait_for(lambda: watch.elected is not None, 30, "a new leader")
    finally:
        watch.stop()
    assert all(status == 503 for status, _ in tries[:-1]), tries
    # "cooldown" only if an update sent during the election landed although its answer was lost.
    assert tries[-1] in ((200, "scaled_up"), (200, "cooldown")), tries
    assert surviving.status_of("/-/ready") == 200
    # Its duplicate, and every further retry, meets the cooldown: applied once.
    assert answer(surviving, service) == (200, "cooldown")
    assert replicas_of(cluster, service) == 2
    assert orphaned.status_of("/-/ready") == 503

    # The dead manager comes back: its receiver is ready again and a late retry there is a no-op too.
    rejoined = cluster.start(leader.name)
    wait_for(lambda: orphaned.status_of("/-/ready") == 200, 60, "the orphaned receiver to be ready again")
    assert answer(orphaned, service) == (200, "cooldown")
    converge(cluster, service, 2)
    assert sum(tasks_by_node(cluster, service).values()) == 2
    new_leader, elected = watch.elected
    report(f"leader {leader.name} killed: {new_leader} elected after {elected:.1f}s; the receiver on {survivor.name} "
           f"answered {len(tries) - 1} x 503 then {tries[-1][1]} 1 -> 2 at {scaled_after:.1f}s; the one on {leader.name}: "
           f"503 and not ready, /-/healthy 200; retries and duplicates -> cooldown; {leader.name} rejoined in {rejoined:.1f}s")


def test_a_manager_without_quorum_answers_503_and_not_ready_until_quorum_returns(cluster: Cluster, pinned_service, receiver_on):
    set_ollama_nodes(cluster, "w1", "w2")
    service = pinned_service(1)
    last, *others = cluster.managers
    receiver = receiver_on(last, service, timeout="3s")  # answers within the probes' 5s

    started = time.monotonic()
    for node in others:
        cluster.kill(node.name)
    wait_for(lambda: receiver.status_of("/-/ready") == 503, 60, "the receiver to report no quorum")
    unready_after = time.monotonic() - started
    assert answer(receiver, service)[0] == 503
    assert receiver.status_of("/-/healthy") == 200

    restored = time.monotonic()
    cluster.start(others[0].name, wait=False)
    wait_for(lambda: receiver.status_of("/-/ready") == 200, 90, "quorum to return")
    ready_after = time.monotonic() - restored
    assert answer(receiver, service) == (200, "scaled_up")
    assert replicas_of(cluster, service) == 2
    report(f"quorum lost (2 of 3 managers killed): the receiver on {last.name} not ready after {unready_after:.1f}s, "
           f"webhook 503, /-/healthy 200; one manager back: ready again after {ready_after:.1f}s and scaled 1 -> 2")


def test_a_lost_worker_is_rescheduled_and_the_receiver_holds_scale_up_until_its_tasks_run_again(cluster: Cluster, pinned_service, receiver_on):
    set_ollama_nodes(cluster, "w1", "w2", "m3")
    service = pinned_service(4)
    before = tasks_by_node(cluster, service)
    assert before.get("w2", 0) >= 1, before
    receiver = receiver_on(cluster.node("m1"), service, scale_up_cooldown=0)

    started = time.monotonic()
    cluster.kill("w2")
    stale = service_status(receiver, service)["replicas_running"]
    detected = cluster.wait_state("w2", "down", 90)
    # The managers mark the node down, then (another raft write) give its tasks up for new ones.
    wait_for(lambda: sum(tasks_by_node(cluster, service).values()) < 4, 30, "w2's tasks to be given up")
    # Decisions count tasks from the receiver's watched copy, re-listed every second (never older
    # than three re-lists): the hold starts once it has seen them go.
    wait_for(lambda: service_status(receiver, service)["replicas_running"] < 4, 10,
             "the receiver's copy to count w2's tasks gone")

    answers: list[tuple[int, str]] = []
    while not answers or answers[-1][1] == "not_converged":
        assert time.monotonic() - started < 120, answers
        answers.append(answer(receiver, service))
        if answers[-1][1] == "not_converged":
            time.sleep(0.5)
    went_on = time.monotonic() - started
    held = [a for a in answers if a == (200, "not_converged")]
    assert held, f"no hold while fewer tasks ran than desired: {answers}"
    assert answers == held + [(200, "scaled_up")]
    assert replicas_of(cluster, service) == 5
    converge(cluster, service, 5)
    after = tasks_by_node(cluster, service)
    assert "w2" not in after and set(after) <= {"w1", "m3"} and sum(after.values()) == 5
    report(f"worker w2 killed carrying {before['w2']} of 4 replicas: the receiver still counted {stale} running until "
           f"the managers marked w2 down at {detected:.1f}s; {len(held)} x not_converged while they were rescheduled; "
           f"4 running again and scaled 4 -> 5 at {went_on:.1f}s; now {after}")
