"""The decision, one row per case: every reason code ``decide`` returns, each boundary, refusals
and dry run included (pure: a snapshot in, an outcome out)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from receiver.config import ServicePolicy
from receiver.domain import (
    Direction,
    DockerTimeout,
    Reason,
    ScaleRequest,
    ServiceSnapshot,
    ServiceState,
    SwarmError,
)
from receiver.models import Alert
from receiver.policy import decide, failed, merge_requests, requests_from_alerts
from receiver.state import PAUSE_LABEL, STATE_LABELS, Record, encode_time

UP, DOWN = Direction.UP, Direction.DOWN
NOW = 1_000_000.0
POLICY = ServicePolicy(
    min_replicas=1, max_replicas=4, scale_up_step=1, scale_down_step=1,
    scale_up_cooldown=120, scale_down_cooldown=300, convergence_wait=300,
)


def step(direction: Direction) -> ScaleRequest:
    return ScaleRequest(direction, step=True)


def target(direction: Direction, *targets: int) -> ScaleRequest:
    return ScaleRequest(direction, targets=targets)


def state(replicas: int, running: int | None = None, **kw: float | None) -> ServiceState:
    return ServiceState(replicas=replicas, running=replicas if running is None else running, **kw)


def snapshot_of(s: ServiceState, mode: str = "replicated", updating: bool = False, **labels: str) -> ServiceSnapshot:
    """The service as the swarm would report the state ``s``: times as our state labels."""
    times = {Direction.UP: s.last_scale_up, Direction.DOWN: s.last_scale_down}
    state_labels = {STATE_LABELS[d]: encode_time(t) for d, t in times.items() if t is not None}
    return ServiceSnapshot(id="id", name="svc", version=1, mode=mode, replicas=s.replicas, running=s.running,
                           pending_since=s.pending_since, labels={**state_labels, **labels}, spec={}, updating=updating)


# (case, request, state, policy changes, expected target, expected reason)
CASES = [
    ("one step up from one", step(UP), state(1), {}, 2, Reason.SCALED_UP),
    ("one step down from three", step(DOWN), state(3), {}, 2, Reason.SCALED_DOWN),
    ("a step of two from three with max four clamps to four", step(UP), state(3), {"scale_up_step": 2}, 4, Reason.CLAMPED_TO_MAX),
    ("a step of two down from two with min one clamps to one", step(DOWN), state(2), {"scale_down_step": 2}, 1, Reason.CLAMPED_TO_MIN),
    ("at max a scale-up is a no-op", step(UP), state(4), {}, 4, Reason.AT_MAX),
    ("above max a scale-up does not lower the replicas", step(UP), state(6), {}, 6, Reason.AT_MAX),
    ("at min a scale-down is a no-op", step(DOWN), state(1), {}, 1, Reason.AT_MIN),
    ("below min a scale-down does not raise the replicas", step(DOWN), state(0), {}, 0, Reason.AT_MIN),
    ("below min a scale-up goes at least to min", step(UP), state(0), {"min_replicas": 2}, 2, Reason.CLAMPED_TO_MIN),
    ("above max a scale-down goes to max at once", step(DOWN), state(7), {}, 4, Reason.CLAMPED_TO_MAX),
    ("desired_replicas is honoured within the bounds", target(UP, 3), state(1), {}, 3, Reason.SCALED_UP),
    ("desired_replicas above max lands on max", target(UP, 50), state(1), {}, 4, Reason.CLAMPED_TO_MAX),
    ("desired_replicas below min lands on min", target(DOWN, 0), state(3), {}, 1, Reason.CLAMPED_TO_MIN),
    ("desired_replicas down is honoured", target(DOWN, 2), state(4), {}, 2, Reason.SCALED_DOWN),
    ("a scale-up whose desired_replicas is not above current is a no-op", target(UP, 2), state(2), {}, 2, Reason.AT_TARGET),
    ("a scale-down whose desired_replicas is not below current is a no-op", target(DOWN, 3), state(2), {}, 2, Reason.AT_TARGET),
    ("the largest of several targets wins", target(UP, 2, 3), state(1), {}, 3, Reason.SCALED_UP),
    ("a step and a target: the larger wins", ScaleRequest(UP, targets=(2,), step=True), state(2), {}, 3, Reason.SCALED_UP),
    # min_replicas 0: only a target of 0 (the idle rule, OllamaUnused) takes a service to 0, never a step.
    ("with min 0 a step down stops at one", step(DOWN), state(1), {"min_replicas": 0}, 1, Reason.AT_MIN),
    ("with min 0 a step of two from two stops at one", step(DOWN), state(2), {"min_replicas": 0, "scale_down_step": 2}, 1,
     Reason.SCALED_DOWN),
    ("with min 0 a target of 0 goes to 0", target(DOWN, 0), state(1), {"min_replicas": 0}, 0, Reason.SCALED_DOWN),
    ("a target of 0 wins over a load rule's target", target(DOWN, 0, 2), state(3), {"min_replicas": 0}, 0, Reason.SCALED_DOWN),
    ("a target of 0 wins over a step", ScaleRequest(DOWN, targets=(0,), step=True), state(3), {"min_replicas": 0}, 0,
     Reason.SCALED_DOWN),
    ("a target of 0 waits for the scale-down cooldown", target(DOWN, 0), state(1, last_scale_up=NOW - 60),
     {"min_replicas": 0}, 1, Reason.COOLDOWN),
    ("with min 1 a target of 0 lands on one", target(DOWN, 0), state(2), {}, 1, Reason.CLAMPED_TO_MIN),
    # A wake: a client waits for a service at 0 replicas.
    ("a wake takes 0 to 1 whatever the cooldown", ScaleRequest(UP, wake=True), state(0, last_scale_up=NOW - 1),
     {"min_replicas": 0}, 1, Reason.WOKEN),
    ("a wake takes 0 to min_replicas", ScaleRequest(UP, wake=True), state(0), {"min_replicas": 2}, 2, Reason.WOKEN),
    ("a wake of a service with a replica changes nothing", ScaleRequest(UP, wake=True), state(1), {"min_replicas": 0}, 1,
     Reason.AT_TARGET),
    ("scale-up one second inside its cooldown waits", step(UP), state(2, last_scale_up=NOW - 119), {}, 2, Reason.COOLDOWN),
    ("scale-up exactly when its cooldown ends goes", step(UP), state(2, last_scale_up=NOW - 120), {}, 3, Reason.SCALED_UP),
    ("a recent scale-down does not hold a scale-up", step(UP), state(2, last_scale_down=NOW - 1), {}, 3, Reason.SCALED_UP),
    ("scale-down inside its cooldown after a scale-down waits", step(DOWN), state(3, last_scale_down=NOW - 299), {}, 3, Reason.COOLDOWN),
    ("scale-down inside its cooldown after a scale-up waits", step(DOWN), state(3, last_scale_up=NOW - 299), {}, 3, Reason.COOLDOWN),
    ("scale-down exactly when its cooldown ends goes", step(DOWN), state(3, last_scale_up=NOW - 300), {}, 2, Reason.SCALED_DOWN),
    ("a zero cooldown never holds", step(UP), state(2, last_scale_up=NOW), {"scale_up_cooldown": 0}, 3, Reason.SCALED_UP),
    ("scale-up waits while fewer tasks run than asked", step(UP), state(3, running=2, pending_since=NOW - 10), {}, 3, Reason.NOT_CONVERGED),
    ("fewer tasks run but none is pending: nothing to wait for", step(UP), state(3, running=2), {}, 4, Reason.SCALED_UP),
    ("scale-up goes once the convergence wait is over", step(UP), state(3, running=2, pending_since=NOW - 300), {}, 4, Reason.SCALED_UP),
    ("scale-down does not wait for convergence", step(DOWN), state(3, running=2, pending_since=NOW - 10), {}, 2, Reason.SCALED_DOWN),
    ("at max is reported before the cooldown", step(UP), state(4, last_scale_up=NOW - 1), {}, 4, Reason.AT_MAX),
]


@pytest.mark.parametrize(
    ("request_", "state_", "changes", "expected_target", "expected_reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide(request_, state_, changes, expected_target, expected_reason):
    policy = POLICY.model_copy(update=changes)
    decision = decide("svc", request_, policy, snapshot_of(state_), NOW)
    assert (decision.target, decision.reason) == (expected_target, expected_reason)
    assert decision.current == state_.replicas
    if expected_reason.changes:
        assert decision.apply == {STATE_LABELS[request_.direction]: encode_time(NOW)}
    else:
        assert decision.apply is None


REFUSALS = [
    ("a service not in the configuration", None, snapshot_of(state(1)), Reason.UNCONFIGURED_SERVICE),
    ("a configured service the swarm does not have", POLICY, None, Reason.SERVICE_NOT_FOUND),
    ("a global service", POLICY, snapshot_of(state(0), mode="global"), Reason.GLOBAL_MODE),
    ("a service carrying the pause label", POLICY, snapshot_of(state(1), **{PAUSE_LABEL: "true"}), Reason.PAUSED),
    ("a state label that is not a time", POLICY, snapshot_of(state(1), **{STATE_LABELS[UP]: "yesterday"}),
     Reason.INVALID_STATE_LABEL),
    ("a service in the middle of a rolling update", POLICY, snapshot_of(state(1), updating=True), Reason.UPDATE_IN_PROGRESS),
    ("a wake of a service frozen by a silence", POLICY.model_copy(update={"min_replicas": 0}), snapshot_of(state(0)),
     Reason.FROZEN),
]


@pytest.mark.parametrize(("policy", "snapshot", "reason"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals_are_decided_with_their_reason_and_apply_nothing(policy, snapshot, reason):
    request, frozen = step(UP), None
    if reason is Reason.FROZEN:
        request, frozen = ScaleRequest(UP, wake=True), {"until": "2026-12-02T05:00:00Z"}
    decision = decide("svc", request, policy, snapshot, NOW, frozen=frozen)
    assert decision.reason is reason
    assert decision.apply is None and not decision.applied


def test_the_tables_cover_every_reason_decide_can_give():
    not_from_decide = {Reason.RESTORED, Reason.DOCKER_ERROR, Reason.DOCKER_REFUSED,  # restored: RESTORES below
                       Reason.RESOLVED, Reason.MISSING_LABELS, Reason.INVALID_SCALE_LABEL,
                       Reason.SCHEDULED_MINIMUM}  # policy.to_minimum: tests/test_schedule.py
    assert {c[-1] for c in CASES} | {r[-1] for r in REFUSALS} == set(Reason) - not_from_decide


def test_dry_run_keeps_the_reason_says_it_would_and_applies_nothing():
    decision = decide("svc", step(UP), POLICY, snapshot_of(state(1)), NOW, dry_run=True)
    assert (decision.reason, decision.target, decision.apply, decision.applied) == (Reason.SCALED_UP, 2, None, False)
    assert decision.as_dict()["dry_run"] == "would"
    no_op = decide("svc", step(UP), POLICY, snapshot_of(state(4)), NOW, dry_run=True)
    assert no_op.reason is Reason.AT_MAX and "dry_run" not in no_op.as_dict()


def test_a_decision_inside_a_cooldown_says_how_long_is_left():
    decision = decide("svc", step(UP), POLICY, snapshot_of(state(2, last_scale_up=NOW - 20)), NOW)
    assert decision.reason is Reason.COOLDOWN
    assert decision.details["cooldown_remaining"] == pytest.approx(100)


@pytest.mark.parametrize(("error", "reason"), [
    (DockerTimeout("slow"), Reason.DOCKER_ERROR),
    (SwarmError("engine error", 500), Reason.DOCKER_ERROR),
    (SwarmError("refused by the gate", 403), Reason.DOCKER_REFUSED),
    (SwarmError("invalid spec", 400), Reason.DOCKER_REFUSED),
], ids=["timeout", "a 500", "a 403", "a 400"])
def test_a_docker_failure_is_transient_or_refused_for_good(error, reason):
    outcome = failed("svc", step(UP), error, NOW)
    assert outcome.reason is reason
    assert outcome.details["kind"] == error.kind


def test_only_moves_count_as_changes():
    assert {r for r in Reason if r.changes} == {
        Reason.SCALED_UP, Reason.SCALED_DOWN, Reason.CLAMPED_TO_MAX, Reason.CLAMPED_TO_MIN, Reason.RESTORED,
        Reason.WOKEN, Reason.SCHEDULED_MINIMUM,
    }


def test_up_wins_over_down_when_merging():
    merged = merge_requests([step(DOWN), target(UP, 3), target(DOWN, 1)])
    assert merged == ScaleRequest(UP, targets=(3,), step=False)


def test_merging_keeps_every_target_and_the_step_of_the_winning_direction():
    merged = merge_requests([target(UP, 3), step(UP), target(UP, 5), target(DOWN, 9)])
    assert merged == ScaleRequest(UP, targets=(3, 5), step=True)


def _alert(status: str = "firing", **labels: str) -> Alert:
    return Alert(status=status, labels={"alertname": "A", **labels}, fingerprint="f")


@pytest.mark.parametrize(
    ("alert", "reason"),
    [
        (_alert("resolved", service="s", scale="up"), Reason.RESOLVED),
        (_alert(scale="up"), Reason.MISSING_LABELS),
        (_alert(service="s"), Reason.MISSING_LABELS),
        (_alert(service="", scale="up"), Reason.MISSING_LABELS),
        (_alert(service="s", scale="sideways"), Reason.INVALID_SCALE_LABEL),
    ],
    ids=["resolved", "no service label", "no scale label", "empty service label", "scale neither up nor down"],
)
def test_alerts_that_ask_for_nothing_are_ignored_with_a_reason(alert, reason):
    requests, ignored = requests_from_alerts([alert])
    assert requests == {}
    assert [i.reason for i in ignored] == [reason]


def test_firing_alerts_become_one_request_per_service():
    alerts = [
        _alert(service="a", scale="down"),
        Alert(status="firing", labels={"service": "a", "scale": "up"}, annotations={"desired_replicas": "3"}),
        _alert(service="b", scale="down"),
    ]
    requests, ignored = requests_from_alerts(alerts)
    assert ignored == []
    assert requests == {"a": ScaleRequest(UP, targets=(3,)), "b": ScaleRequest(DOWN, step=True)}


# --- a redeploy dropped our labels: the record is restored first, the request decided on it ---

T0 = encode_time(NOW - 60)  # a scale-up a minute ago: inside the 120 s up-cooldown
REDEPLOYED = snapshot_of(state(1))  # the file's replicas, no state labels


def record(replicas: int, labels: dict[str, str] | None = None, service_id: str = "id") -> Record:
    return Record(replicas, {STATE_LABELS[UP]: T0} if labels is None else labels, service_id, 7)


RESTORES = [
    ("inside the cooldown: the record alone is put back", step(UP), record(3), Reason.RESTORED, 3, {STATE_LABELS[UP]: T0}),
    ("a down request inside the cooldown: the record alone", step(DOWN), record(3), Reason.RESTORED, 3, {STATE_LABELS[UP]: T0}),
    ("after the cooldown: restored and stepped in one update", step(UP), record(3, {STATE_LABELS[UP]: encode_time(NOW - 500)}),
     Reason.SCALED_UP, 4, {STATE_LABELS[UP]: encode_time(NOW)}),
    ("a record above max is restored clamped", ScaleRequest(DOWN, targets=(9,)), record(9), Reason.RESTORED, 4,
     {STATE_LABELS[UP]: T0}),
]


@pytest.mark.parametrize(("request_", "rec", "reason", "target", "labels"), [r[1:] for r in RESTORES],
                         ids=[r[0] for r in RESTORES])
def test_labels_gone_and_a_record_present_restore_first_and_decide_on_the_restored_state(request_, rec, reason, target, labels):
    decision = decide("svc", request_, POLICY, REDEPLOYED, NOW, record=rec)
    assert (decision.reason, decision.current, decision.target) == (reason, 1, target)
    assert decision.details["restored"] == POLICY.clamp(rec.replicas)
    assert decision.apply == {**rec.labels, **labels}


@pytest.mark.parametrize("rec", [record(3, service_id="another-id"), record(3, labels={})],
                         ids=["a record of a service re-created under the same name", "a record without state labels"])
def test_a_record_that_is_not_this_services_last_decision_is_never_restored(rec):
    decision = decide("svc", step(UP), POLICY, REDEPLOYED, NOW, record=rec)
    assert (decision.reason, decision.target) == (Reason.SCALED_UP, 2)
    assert "restored" not in decision.details


def test_a_record_is_not_restored_on_a_paused_service():
    paused = snapshot_of(state(1), **{PAUSE_LABEL: "true"})
    assert decide("svc", step(UP), POLICY, paused, NOW, record=record(3)).reason is Reason.PAUSED


def test_a_state_label_in_the_future_counts_as_now_and_says_so():
    a_year_ahead = snapshot_of(state(2, last_scale_up=NOW + 365 * 86400))
    decision = decide("svc", step(UP), POLICY, a_year_ahead, NOW)
    assert decision.reason is Reason.COOLDOWN
    assert decision.details["cooldown_remaining"] == 120  # not a year
    assert decision.details["clock_ahead"] == 365 * 86400
    # The scaler remembers when it first saw such a label (tests/test_scaler.py): one cooldown, not a year.


def test_after_a_redeploy_that_raised_the_replicas_an_up_request_never_lowers_them_by_calling_it_a_scale_up():
    raised = snapshot_of(state(4))  # the redeploy set 4 and dropped our labels; our record says 2
    old = record(2, {STATE_LABELS[UP]: encode_time(NOW - 500)})  # its cooldown is over
    decision = decide("svc", step(UP), POLICY, raised, NOW, record=old)
    assert (decision.reason, decision.direction, decision.current, decision.target) == (Reason.RESTORED, DOWN, 4, 2)
    mirrored = decide("svc", step(DOWN), POLICY, snapshot_of(state(1)), NOW, record=record(3, {STATE_LABELS[UP]: encode_time(NOW - 500)}))
    assert (mirrored.reason, mirrored.direction, mirrored.target) == (Reason.RESTORED, UP, 3)


def test_the_convergence_wait_is_timed_on_this_receivers_clock_when_the_engines_runs_ahead():
    from receiver.state import unconverged_since

    ahead = ServiceSnapshot(id="id", name="svc", version=1, mode="replicated", replicas=2, running=1,
                            pending_since=NOW + 3600, labels={}, spec={})
    assert unconverged_since(None, ahead, NOW) == NOW
    assert unconverged_since(NOW - 10, ahead, NOW) == NOW - 10


def test_a_service_short_until_a_moment_ago_stays_unconverged_until_its_newest_task_settles():
    from receiver.state import SETTLE_SECONDS, unconverged_since

    def read(running: int, pending_since: float | None = None, running_since: float | None = None) -> ServiceSnapshot:
        return ServiceSnapshot(id="id", name="svc", version=1, mode="replicated", replicas=2, running=running,
                               pending_since=pending_since, running_since=running_since, labels={}, spec={})

    assert unconverged_since(NOW - 30, read(2, running_since=NOW - 0.1), NOW) == NOW - 30  # its moment of running
    assert unconverged_since(NOW - 30, read(2, running_since=NOW - SETTLE_SECONDS), NOW) is None  # settled
    assert unconverged_since(NOW - 30, read(2, running_since=NOW + 60), NOW) == NOW - 30  # node clock ahead: not yet
    assert unconverged_since(None, read(2, running_since=NOW - 0.1), NOW) is None  # never short: nothing to wait for
    assert unconverged_since(None, read(1), NOW) == NOW  # short, its replacement not created yet: from now
    assert unconverged_since(NOW - 30, read(1), NOW) == NOW - 30
    # a node whose clock runs behind: the start counts from when this receiver first saw the task running
    from receiver.state import running_as_first_seen
    behind = replace(read(2, running_since=NOW - 600), running_task="t1")
    seen, carried = running_as_first_seen(behind, None, NOW)
    assert (seen.running_since, carried) == (NOW, ("t1", NOW))
    assert running_as_first_seen(behind, carried, NOW + 9)[0].running_since == NOW  # the same task, seen before
    assert running_as_first_seen(behind, ("t0", NOW - 60), NOW)[0].running_since == NOW  # another task: seen now
    settled = replace(read(2, running_since=NOW - 600), running_task="t1")
    assert running_as_first_seen(settled, ("t1", NOW - 700), NOW)[0].running_since == NOW - 600
    assert running_as_first_seen(replace(read(2, running_since=NOW + 60), running_task="t1"), ("t1", NOW - 9), NOW)[0].running_since == NOW
    # the policy holds a scale-up of a whole service while the carried time says it is settling
    held = decide("svc", step(UP), POLICY, snapshot_of(state(3, pending_since=NOW - 10)), NOW)
    assert (held.reason, held.details) == (Reason.NOT_CONVERGED, {"running": 3, "waited": 10.0, "settling": True})
