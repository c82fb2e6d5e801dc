"""Freezes read from silences, and the status table (pure parts)."""

from __future__ import annotations

import pytest

from receiver.config import ConfigError, ScalingAlerts, parse_config
from receiver.ops import status_rows
from receiver.silences import describe, freeze_matchers, freeze_of, is_freeze_of, silenced_directions

S = "ollama_ollama"


def silence(*matchers: tuple[str, str, bool, bool], state: str = "active", ends: str = "2026-12-01T12:00:00Z", sid: str = "a") -> dict:
    return {
        "id": sid, "status": {"state": state}, "endsAt": ends, "comment": "c", "createdBy": "me",
        "matchers": [{"name": n, "value": v, "isRegex": r, "isEqual": e} for n, v, r, e in matchers],
    }


ALERTS = ScalingAlerts()
UP, DOWN = ALERTS.up[0], ALERTS.down[0]  # OllamaHighCPU, OllamaLowCPU


def m(name: str, value: str, regex: bool = False, equal: bool = True) -> tuple[str, str, bool, bool]:
    return name, value, regex, equal


@pytest.mark.parametrize(
    ("matchers", "directions"),
    [
        ([m("service", S), m("scale", "up|down", True)], {"up", "down"}),
        ([m("service", S)], {"up", "down"}),
        ([m("service", S), m("scale", "down")], {"down"}),
        ([m("service", "ollama_.*", True), m("alertname", UP)], {"up"}),
        ([m("service", S), m("alertname", "OllamaHigh.*", True)], {"up"}),
        ([m("service", S), m("alertname", DOWN, equal=False)], {"up", "down"}),
        ([m("alertname", UP)], {"up"}),
        ([m("service", S), m("alertname", "OllamaCPUSignalMissing")], set()),
        ([m("service", ".+", True), m("severity", "critical|warning", True)], set()),
        ([m("cluster", "prod")], set()),
        ([m("service", S), m("severity", "", equal=True)], {"up", "down"}),
        ([m("service", "other")], set()),
        ([m("service", S, equal=False)], set()),
        ([m("scale", "up")], {"up"}),
        ([], set()),
    ],
    ids=["the freeze autoscaler makes", "the whole service", "scale-down only", "a regex and a scale-up alert name",
         "the scale-up alerts by a regex", "all but one scale-down alert", "one alert of every service",
         "a human-only alert of the service", "maintenance of alerts with a severity", "a label scaling alerts lack",
         "a label scaling alerts lack, matched empty", "another service", "every service but this one",
         "every scale-up", "no matcher"],
)
def test_a_silence_freezes_a_direction_when_it_mutes_at_least_one_scaling_alert_of_the_service(matchers, directions):
    assert silenced_directions(silence(*matchers), S, ALERTS) == directions


def test_labels_every_scaling_alert_carries_are_matched_as_given_in_the_configuration():
    maintenance = silence(m("cluster", "prod"))
    assert silenced_directions(maintenance, S, ALERTS) == set()
    assert silenced_directions(maintenance, S, ScalingAlerts(labels={"cluster": "prod"})) == {"up", "down"}


def test_the_configured_scaling_alert_names_decide_which_alert_names_freeze():
    only_cpu = ScalingAlerts(up=("OllamaHighCPU",), down=("OllamaLowCPU",))
    gpu = silence(m("service", S), m("alertname", "OllamaHighGPU"))
    assert silenced_directions(gpu, S, ALERTS) == {"up"}
    assert silenced_directions(gpu, S, only_cpu) == set()


def test_the_configuration_refuses_labels_every_scaling_alert_has_of_its_own():
    with pytest.raises(ConfigError, match="alertmanager.scaling_alerts: labels: scale, service cannot be set here"):
        parse_config({"alertmanager": {"scaling_alerts": {"labels": {"service": "x", "scale": "up"}}}})


def test_only_active_silences_freeze_and_the_latest_end_is_reported():
    silences = [
        silence(m("service", S), m("scale", "down"), ends="2026-12-01T10:00:00Z", sid="a"),
        silence(m("service", S), m("scale", "up"), ends="2026-12-01T11:00:00Z", sid="b"),
        silence(m("service", S), state="expired", ends="2026-12-01T23:00:00Z", sid="c"),
    ]
    freeze = freeze_of(silences, S, ALERTS)
    assert freeze is not None
    assert (freeze.directions, freeze.until, freeze.silence_ids) == (("down", "up"), "2026-12-01T11:00:00Z", ("a", "b"))
    assert freeze_of(silences, "other", ALERTS) is None


def test_the_freeze_autoscaler_makes_holds_both_directions_of_one_service():
    made = {"matchers": freeze_matchers(S), "status": {"state": "active"}, "endsAt": ""}
    assert silenced_directions(made, S, ALERTS) == {"up", "down"}
    assert silenced_directions(made, S + "x", ALERTS) == set()


@pytest.mark.parametrize(
    ("matchers", "unfreezes"),
    [
        ([m("service", S), m("scale", "up|down", True)], True),
        ([m("scale", "up|down", True), m("service", S)], True),
        ([m("service", S), m("scale", "down|up", True)], False),
        ([m("service", S)], False),
        ([m("service", S), m("scale", "up|down", True), m("alertname", UP)], False),
        ([m("service", S + "x"), m("scale", "up|down", True)], False),
    ],
    ids=["as freeze writes them", "in another order", "an equivalent regex", "the whole service",
         "one more matcher", "another service"],
)
def test_unfreeze_expires_only_silences_with_exactly_the_matchers_freeze_writes(matchers, unfreezes):
    assert is_freeze_of(silence(*matchers), S) is unfreezes


def test_a_silence_is_described_by_its_id_matchers_end_author_and_comment():
    text = describe(silence(m("service", S), m("scale", "up|down", True), m("alertname", 'a"b', equal=False)))
    assert text == ('a {service="ollama_ollama", scale=~"up|down", alertname!="a\\"b"} '
                    "until 2026-12-01T12:00:00Z by 'me': 'c'")


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
