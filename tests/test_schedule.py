"""Scheduled minimums: the windows in the configuration, which apply when (lead, midnight, DST),
the effective minimum in decisions, and the raise to it (pure: ``now`` is passed in)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from receiver.config import ConfigError, ServicePolicy, parse_config
from receiver.domain import Direction, Reason, ScaleRequest, ServiceSnapshot
from receiver.policy import decide, to_minimum
from receiver.schedule import applying, effective_minimum, effective_policy, scheduled_minimum
from receiver.state import PAUSE_LABEL, STATE_LABELS, Record, encode_time

BERLIN = "Europe/Berlin"


def at(text: str, zone: str = "UTC", fold: int = 0) -> float:
    """Epoch seconds of a local time such as ``2026-12-07 07:45:00`` in ``zone``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold).timestamp()


def policy(*windows: dict[str, Any], **kw: Any) -> ServicePolicy:
    return ServicePolicy.model_validate({"min_replicas": 1, "max_replicas": 6, "schedules": list(windows), **kw})


def window(minimum: int, lead: str | float = 0, **interval: Any) -> dict[str, Any]:
    return {"min_replicas": minimum, "lead": lead, "time_intervals": [interval]}


def hours(start: str, end: str) -> list[dict[str, str]]:
    return [{"start_time": start, "end_time": end}]


# 2026-12-07 is a Monday. Business hours in Berlin (UTC+1 in December), applied 15 minutes early.
BUSINESS = window(2, "15m", weekdays=["monday:friday"], times=hours("08:00", "18:00"), location=BERLIN)
# A night across midnight, written as Alertmanager needs it: two entries, one each side of 24:00.
NIGHT = {"min_replicas": 3, "lead": "30m", "time_intervals": [
    {"weekdays": ["friday"], "times": hours("22:00", "24:00")},
    {"weekdays": ["saturday"], "times": hours("00:00", "06:00")},
]}

CASES = [
    ("a second before the lead: not yet", BUSINESS, "2026-12-07 07:44:59", BERLIN, 0),
    ("exactly lead before the start: applied", BUSINESS, "2026-12-07 07:45:00", BERLIN, 2),
    ("inside the window", BUSINESS, "2026-12-07 12:00:00", BERLIN, 2),
    ("its last second", BUSINESS, "2026-12-07 17:59:59", BERLIN, 2),
    ("at its end time: over (the end is exclusive)", BUSINESS, "2026-12-07 18:00:00", BERLIN, 0),
    ("the lead does not reach a weekday the window excludes", BUSINESS, "2026-12-12 07:50:00", BERLIN, 0),
    ("in the window's zone, not UTC: 07:00 UTC is 08:00 in Berlin", BUSINESS, "2026-12-07 07:00:00", "UTC", 2),
    ("a night window's lead, the evening before", NIGHT, "2026-12-11 21:30:00", "UTC", 3),
    ("a minute before that lead", NIGHT, "2026-12-11 21:29:00", "UTC", 0),
    ("the night's last second before midnight", NIGHT, "2026-12-11 23:59:59", "UTC", 3),
    ("midnight itself: the second entry holds, no gap", NIGHT, "2026-12-12 00:00:00", "UTC", 3),
    ("the night is over at 06:00", NIGHT, "2026-12-12 06:00:00", "UTC", 0),
    ("a lead that crosses midnight", window(4, "1h", weekdays=["monday"], times=hours("00:00", "01:00")),
     "2026-12-06 23:00:00", "UTC", 4),
    ("a window shorter than its lead, when only the middle of [now, now+lead] holds",
     window(2, "15m", times=hours("10:00", "10:05")), "2026-12-07 09:52:00", "UTC", 2),
    ("a window shorter than its lead, its last second", window(2, "15m", times=hours("10:00", "10:05")),
     "2026-12-07 10:04:59", "UTC", 2),
    ("a window shorter than its lead, over", window(2, "15m", times=hours("10:00", "10:05")),
     "2026-12-07 10:05:00", "UTC", 0),
    ("DST spring forward: the lead is real time, 30 min before 03:00 CEST is 01:30 CET",
     window(2, "30m", times=hours("03:00", "04:00"), location=BERLIN), "2026-03-29 01:30:00", BERLIN, 2),
    ("DST spring forward: a second earlier, not yet",
     window(2, "30m", times=hours("03:00", "04:00"), location=BERLIN), "2026-03-29 01:29:59", BERLIN, 0),
    ("DST spring forward: 02:00-03:00 does not exist that night, so it never holds",
     window(2, "1h", times=hours("02:00", "03:00"), location=BERLIN), "2026-03-29 01:30:00", BERLIN, 0),
    ("DST fall back: the repeated hour holds the first time", window(2, times=hours("02:00", "03:00"), location=BERLIN),
     "2026-10-25 02:30:00", BERLIN, 2),
    ("DST fall back: and the second time, an hour later", window(2, times=hours("02:00", "03:00"), location=BERLIN),
     "2026-10-25 02:30:00;1", BERLIN, 2),
    ("a time zone by default UTC", window(5, times=hours("08:00", "09:00")), "2026-12-07 08:00:00", "UTC", 5),
]


@pytest.mark.parametrize(("spec", "when", "zone", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_scheduled_minimum(spec, when, zone, expected):
    text, _, fold = when.partition(";")
    now = at(text, zone, int(fold or 0))
    assert scheduled_minimum(policy(spec).schedules, now) == expected


def test_the_largest_minimum_of_the_windows_that_apply_wins_and_each_says_when_it_starts():
    service = policy(window(2, times=hours("08:00", "18:00")), window(4, "30m", times=hours("12:00", "13:00")),
                     window(6, times=hours("20:00", "21:00")))
    now = at("2026-12-07 11:40:00")
    assert [(a.index, a.active(now), a.starts_at) for a in applying(service.schedules, now)] == [
        (0, True, now), (1, False, at("2026-12-07 12:00:00"))]
    assert scheduled_minimum(service.schedules, now) == 4


@pytest.mark.parametrize(("configured", "when", "expected"), [
    (1, "2026-12-07 12:00:00", 2),
    (1, "2026-12-07 20:00:00", 1),
    (3, "2026-12-07 12:00:00", 3),
    (0, "2026-12-07 20:00:00", 0),
], ids=["the window's, above the configured one", "outside the window: the configured one",
        "a configured minimum above the window's wins", "zero at night"])
def test_effective_minimum_is_the_larger_of_configured_and_scheduled(configured, when, expected):
    service = policy(window(2, weekdays=["monday:friday"], times=hours("08:00", "18:00")), min_replicas=configured)
    assert effective_minimum(service, at(when)) == expected


def test_effective_policy_changes_only_the_minimum():
    service = policy(window(2, times=hours("08:00", "18:00")))
    assert effective_policy(service, at("2026-12-07 20:00:00")) is service
    during = effective_policy(service, at("2026-12-07 12:00:00"))
    assert during.min_replicas == 2
    assert during.model_dump(exclude={"min_replicas"}) == service.model_dump(exclude={"min_replicas"})


# --- configuration --------------------------------------------------------------------------


def problems(schedules: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config({"services": {"svc": {"max_replicas": 4, "schedules": schedules}}})
    return err.value.problems


@pytest.mark.parametrize(("schedules", "expected"), [
    ([window(2, location="Mars/Olympus")],
     "services.svc.schedules.0.time_intervals.0: location: unknown time zone 'Mars/Olympus'"),
    ([window(5)], "services.svc: schedules.0.min_replicas (5) is above max_replicas (4)"),
    ([window(-1)], "services.svc.schedules.0.min_replicas: Input should be greater than or equal to 0"),
    ([window(1, "25h")], "services.svc.schedules.0.lead: Input should be less than or equal to 86400"),
    ([window(1, "soon")], "services.svc.schedules.0.lead: invalid duration 'soon'"),
    ([window(1), window(1, weekdays=["friday:monday"])],
     "services.svc.schedules.1.time_intervals.0: weekdays: 'friday:monday' ends before it starts"),
    ([window(1, times=hours("18:00", "08:00"))],
     "services.svc.schedules.0.time_intervals.0: times: start_time 18:00 is not before end_time 08:00"),
    ([window(1, times=hours("8:00", "18:00"))],
     "services.svc.schedules.0.time_intervals.0: times: start_time '8:00' is not HH:MM"),
    ([window(1, days_of_month=["-1:5"])],
     "services.svc.schedules.0.time_intervals.0: days_of_month: -1:5: the end must be negative"),
    ([window(1, months=["13"])], "services.svc.schedules.0.time_intervals.0: months: '13' is out of range"),
    ([window(1, weekday=["monday"])], "services.svc.schedules.0.time_intervals.0.weekday: Extra inputs are not permitted"),
    ([{"min_replicas": 1, "time_intervals": []}], "services.svc.schedules.0.time_intervals: List should have at least 1 item"),
], ids=["an unknown location", "a minimum above max", "a negative minimum", "a lead over a day", "a lead that is no duration",
        "weekdays backwards", "times backwards", "a time without its leading zero", "days of month of mixed signs",
        "a thirteenth month", "a misspelt field", "no time interval"])
def test_an_invalid_schedule_is_a_config_error_with_its_path(schedules, expected):
    found = problems(schedules)
    assert any(p.startswith(expected) for p in found), found


def test_a_schedule_in_alertmanager_form_loads():
    config = parse_config({"services": {"svc": {"min_replicas": 0, "max_replicas": 4, "schedules": [
        {"name": "business hours", "min_replicas": 2, "lead": "15m", "time_intervals": [
            {"weekdays": ["monday:friday"], "times": [{"start_time": "08:00", "end_time": "18:00"}],
             "days_of_month": [1, "-7:-1"], "months": ["january:march", 12], "years": ["2026:2030"],
             "location": BERLIN}]}]}}})
    (loaded,) = config.services["svc"].schedules
    assert (loaded.name, loaded.min_replicas, loaded.lead) == ("business hours", 2, 900.0)
    assert loaded.time_intervals[0].entry()["days_of_month"] == ["1", "-7:-1"]


# --- decisions with the effective minimum, and the raise to it --------------------------------

NOW = at("2026-12-07 12:00:00")
BOUNDED = policy(window(3, times=hours("08:00", "18:00")), scale_up_cooldown=120, scale_down_cooldown=0,
                 convergence_wait=300)


def snapshot(replicas: int, running: int | None = None, pending_since: float | None = None,
             **labels: str) -> ServiceSnapshot:
    return ServiceSnapshot(id="id", name="svc", version=1, mode="replicated", replicas=replicas,
                           running=replicas if running is None else running, pending_since=pending_since,
                           labels=labels, spec={})


@pytest.mark.parametrize(("replicas", "request_", "expected"), [
    (4, ScaleRequest(Direction.DOWN, step=True), (3, Reason.SCALED_DOWN)),
    (3, ScaleRequest(Direction.DOWN, step=True), (3, Reason.AT_MIN)),
    (5, ScaleRequest(Direction.DOWN, targets=(1,)), (3, Reason.CLAMPED_TO_MIN)),
], ids=["a step down to the window's minimum", "at the window's minimum: at_min", "a target below it: clamped_to_min"])
def test_a_scale_down_never_goes_below_the_effective_minimum(replicas, request_, expected):
    outcome = decide("svc", request_, effective_policy(BOUNDED, NOW), snapshot(replicas), NOW)
    assert (outcome.target, outcome.reason) == expected


def test_after_the_window_the_same_scale_down_goes_below_its_minimum():
    later = at("2026-12-07 18:00:00")
    outcome = decide("svc", ScaleRequest(Direction.DOWN, step=True), effective_policy(BOUNDED, later), snapshot(3), later)
    assert (outcome.target, outcome.reason) == (2, Reason.SCALED_DOWN)


UP_LABEL = STATE_LABELS[Direction.UP]

RAISES = [
    ("below the minimum: raised to it", snapshot(1), {}, (3, Reason.SCHEDULED_MINIMUM)),
    ("inside the scale-up cooldown: raised all the same (a bound, not a step)",
     snapshot(1, **{UP_LABEL: encode_time(NOW - 10)}), {}, (3, Reason.SCHEDULED_MINIMUM)),
    ("while tasks are still starting: raised all the same", snapshot(2, running=1, pending_since=NOW - 10), {},
     (3, Reason.SCHEDULED_MINIMUM)),
    ("at the minimum: nothing", snapshot(3), {}, (3, Reason.AT_TARGET)),
    ("above it: never lowered", snapshot(5), {}, (5, Reason.AT_TARGET)),
    ("paused: refused", snapshot(1, **{PAUSE_LABEL: "true"}), {}, (1, Reason.PAUSED)),
    ("in a rolling update: refused", None, {}, (1, Reason.UPDATE_IN_PROGRESS)),
    ("the swarm has no such service", "missing", {}, (None, Reason.SERVICE_NOT_FOUND)),
]


@pytest.mark.parametrize(("snap", "kw", "expected"), [r[1:] for r in RAISES], ids=[r[0] for r in RAISES])
def test_to_minimum(snap, kw, expected):
    if snap is None:
        snap = ServiceSnapshot(**{**snapshot(1).__dict__, "updating": True})
    elif snap == "missing":
        snap = None
    outcome = to_minimum("svc", ScaleRequest(Direction.UP), effective_policy(BOUNDED, NOW), snap, NOW, **kw)
    assert (outcome.target, outcome.reason) == expected
    if expected[1] is Reason.SCHEDULED_MINIMUM:
        assert outcome.apply == {UP_LABEL: encode_time(NOW)}, "written as a scale-up: its label, its time"
        assert outcome.direction is Direction.UP
    else:
        assert outcome.apply is None


def test_to_minimum_in_dry_run_says_it_would_and_applies_nothing():
    outcome = to_minimum("svc", ScaleRequest(Direction.UP), effective_policy(BOUNDED, NOW), snapshot(1), NOW, dry_run=True)
    assert (outcome.reason, outcome.target, outcome.apply) == (Reason.SCHEDULED_MINIMUM, 3, None)
    assert outcome.as_dict()["dry_run"] == "would"


def test_to_minimum_restores_a_recorded_decision_within_the_effective_bounds():
    lost = snapshot(1)  # a redeploy dropped our labels and reset the replicas
    recorded = Record(2, {UP_LABEL: encode_time(NOW - 3600)}, "id", 1)
    outcome = to_minimum("svc", ScaleRequest(Direction.UP), effective_policy(BOUNDED, NOW), lost, NOW, record=recorded)
    assert (outcome.target, outcome.reason, outcome.details["restored"]) == (3, Reason.RESTORED, 3)
    higher = Record(5, {UP_LABEL: encode_time(NOW - 3600)}, "id", 1)
    outcome = to_minimum("svc", ScaleRequest(Direction.UP), effective_policy(BOUNDED, NOW), lost, NOW, record=higher)
    assert (outcome.target, outcome.reason) == (5, Reason.RESTORED)
