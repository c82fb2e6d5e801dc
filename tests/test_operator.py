"""Freezes read from silences, and the status table (pure parts)."""

from __future__ import annotations

import pytest

from receiver.ops import status_rows
from receiver.silences import freeze_matchers, freeze_of, silenced_directions

S = "ollama_ollama"


def silence(*matchers: tuple[str, str, bool, bool], state: str = "active", ends: str = "2026-12-01T12:00:00Z", sid: str = "a") -> dict:
    return {
        "id": sid, "status": {"state": state}, "endsAt": ends, "comment": "c", "createdBy": "me",
        "matchers": [{"name": n, "value": v, "isRegex": r, "isEqual": e} for n, v, r, e in matchers],
    }


@pytest.mark.parametrize(
    ("matchers", "directions"),
    [
        ([("service", S, False, True), ("scale", "up|down", True, True)], {"up", "down"}),
        ([("service", S, False, True)], {"up", "down"}),
        ([("service", S, False, True), ("scale", "down", False, True)], {"down"}),
        ([("service", "ollama_.*", True, True), ("alertname", "OllamaHighCPU", False, True)], {"up", "down"}),
        ([("service", "other", False, True)], set()),
        ([("service", S, False, False)], set()),
        ([("scale", "up", False, True)], set()),
    ],
    ids=["the freeze autoscaler makes", "the whole service", "scale-down only", "a regex and an alert name",
         "another service", "every service but this one", "no service named"],
)
def test_which_directions_a_silence_freezes(matchers, directions):
    assert silenced_directions(silence(*matchers), S) == directions


def test_only_active_silences_freeze_and_the_latest_end_is_reported():
    silences = [
        silence(("service", S, False, True), ("scale", "down", False, True), ends="2026-12-01T10:00:00Z", sid="a"),
        silence(("service", S, False, True), ("scale", "up", False, True), ends="2026-12-01T11:00:00Z", sid="b"),
        silence(("service", S, False, True), state="expired", ends="2026-12-01T23:00:00Z", sid="c"),
    ]
    freeze = freeze_of(silences, S)
    assert freeze is not None
    assert (freeze.directions, freeze.until, freeze.silence_ids) == (("down", "up"), "2026-12-01T11:00:00Z", ("a", "b"))
    assert freeze_of(silences, "other") is None


def test_the_freeze_autoscaler_makes_holds_both_directions_of_one_service():
    made = {"matchers": freeze_matchers(S), "status": {"state": "active"}, "endsAt": ""}
    assert silenced_directions(made, S) == {"up", "down"}
    assert silenced_directions(made, S + "x") == set()


def test_the_status_table_shows_replicas_cooldowns_decision_and_freeze():
    status = {"services": [{
        "service": S, "min_replicas": 1, "max_replicas": 4, "replicas_desired": 3, "replicas_running": 2,
        "last_scale_up": "2026-12-01T10:00:00Z", "last_scale_down": None, "cooldown_remaining_up": 30,
        "cooldown_remaining_down": 200, "paused": False,
        "last_decision": {"direction": "up", "from": 2, "to": 3, "reason": "scaled_up"},
        "frozen": {"directions": ["down", "up"], "until": "2026-12-01T12:00:00Z", "comment": "", "created_by": "", "silences": ["a"]},
    }]}
    now = 1_796_119_200.0 + 90  # 2026-12-01T10:00:00Z + 90s
    header, row = status_rows(status, now)
    assert header[0] == "SERVICE"
    assert row == [S, "2/3", "1..4", "90s ago", "never", "30s/3m", "up 2->3 scaled_up",
                   "until 2026-12-01T12:00:00Z (1h58m left) [down/up]"]
