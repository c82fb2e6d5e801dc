"""Policy properties over random alert sequences (hypothesis stateful test): the replica count
never leaves [min, max] and never moves inside a cooldown or before tasks converge.

Each sequence runs the real chain a notification takes minus Docker: alerts -> requests per
service -> decide -> state labels written -> state read back from those labels.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from receiver.config import ServicePolicy
from receiver.domain import Direction, ServiceSnapshot
from receiver.models import Alert
from receiver.policy import decide, requests_from_alerts

from ..conftest import report

SEQUENCES = 10_000
SERVICE = "svc"
RUNS = {"sequences": 0, "decisions": 0, "changes": 0}


@st.composite
def policies(draw: st.DrawFn) -> ServicePolicy:
    lo = draw(st.integers(0, 5))
    return ServicePolicy(
        min_replicas=lo,
        max_replicas=draw(st.integers(max(lo, 1), 12)),
        scale_up_step=draw(st.integers(1, 4)),
        scale_down_step=draw(st.integers(1, 4)),
        scale_up_cooldown=draw(st.integers(0, 600)),
        scale_down_cooldown=draw(st.integers(0, 900)),
        convergence_wait=draw(st.integers(0, 600)),
    )


alerts = st.lists(
    st.builds(
        lambda scale, desired, status: Alert(
            status=status, labels={"service": SERVICE, "scale": scale},
            annotations={} if desired is None else {"desired_replicas": str(desired)},
        ),
        st.sampled_from(["up", "down"]), st.none() | st.integers(0, 30), st.sampled_from(["firing", "firing", "resolved"]),
    ),
    min_size=1, max_size=4,
)


class ScalingSequence(RuleBasedStateMachine):
    @initialize(policy=policies(), start=st.integers(0, 12))
    def start(self, policy: ServicePolicy, start: int) -> None:
        RUNS["sequences"] += 1
        self.policy = policy
        self.now = 1_800_000_000.0
        self.replicas = min(max(start, policy.min_replicas), policy.max_replicas)
        self.running = self.replicas
        self.pending_since: float | None = None
        self.labels: dict[str, str] = {}
        self.true_last = {Direction.UP: None, Direction.DOWN: None}

    def snapshot(self) -> ServiceSnapshot:
        return ServiceSnapshot(id="x", name=SERVICE, version=1, mode="replicated", replicas=self.replicas,
                               running=self.running, pending_since=self.pending_since, labels=dict(self.labels), spec={})

    @rule(ms=st.integers(0, 400_000))
    def time_passes(self, ms: int) -> None:
        self.now += ms / 1000

    @rule()
    def a_task_dies(self) -> None:
        if self.running > 0:
            self.running -= 1
            self.pending_since = self.now

    @rule()
    def tasks_converge(self) -> None:
        self.running, self.pending_since = self.replicas, None

    @rule(batch=alerts)
    def a_notification_arrives(self, batch: list[Alert]) -> None:
        requests, _ = requests_from_alerts(batch)
        if SERVICE not in requests:
            return
        decision = decide(SERVICE, requests[SERVICE], self.policy, self.snapshot(), self.now)
        RUNS["decisions"] += 1
        assert decision.current == self.replicas
        if not decision.reason.changes:
            assert decision.target == self.replicas and decision.apply is None
            return
        assert decision.apply is not None
        RUNS["changes"] += 1
        up = decision.direction is Direction.UP
        last_up, last_down = self.true_last[Direction.UP], self.true_last[Direction.DOWN]
        if up:
            assert decision.target > self.replicas
            assert last_up is None or self.now - last_up >= self.policy.scale_up_cooldown
            if self.running < self.replicas and self.pending_since is not None:
                assert self.now - self.pending_since >= self.policy.convergence_wait
        else:
            assert decision.target < self.replicas
            last_change = max((t for t in (last_up, last_down) if t is not None), default=None)
            assert last_change is None or self.now - last_change >= self.policy.scale_down_cooldown
        if decision.target > self.running and self.pending_since is None:
            self.pending_since = self.now  # the new tasks start: pending from now
        self.replicas = decision.target
        self.running = min(self.running, self.replicas)
        if self.running == self.replicas:
            self.pending_since = None
        self.labels.update(decision.apply)
        self.true_last[decision.direction] = self.now

    @invariant()
    def replicas_stay_within_bounds(self) -> None:
        if hasattr(self, "policy"):
            assert self.policy.min_replicas <= self.replicas <= self.policy.max_replicas


def test_random_sequences_never_leave_the_bounds_nor_move_inside_a_cooldown():
    run_state_machine_as_test(ScalingSequence, settings=settings(
        max_examples=SEQUENCES, stateful_step_count=25, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck),
    ))
    assert RUNS["sequences"] >= SEQUENCES
    assert RUNS["changes"] > 0
    report(
        f"policy properties: {RUNS['sequences']} random sequences, {RUNS['decisions']} decisions, "
        f"{RUNS['changes']} replica changes, 0 outside [min, max], 0 inside a cooldown or before convergence"
    )
