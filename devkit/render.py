"""Render the shipped Prometheus rules and Alertmanager configuration for local runs.

The files under ``rules/`` and ``alertmanager/`` are part of the product: tests, the
end-to-end loop and the demo must run exactly those, never a second copy. Rendering loads
the shipped YAML, changes only what cannot be the same on a laptop or in CI, and dumps it:

Alertmanager (:func:`render_alertmanager_config`)
    - the autoscaler receiver's webhook ``url`` and bearer-token ``credentials_file``
      (the stack's ``http://autoscaler:8080/webhook`` and ``/run/secrets/autoscaler_token``
      do not exist on loopback);
    - optionally every timing of the route tree multiplied by one factor (``timing_scale``,
      which keeps their arithmetic: 1/60 turns 30s into 500ms and 2m15s into 2250ms), and/or
      ``group_wait``, ``group_interval`` and ``repeat_interval`` set on every route of the
      tree that sets them (and on the root), so a test waits seconds, not minutes;
    - optionally the business-hours interval: its time zone (``location``), its weekdays
      and its times, so a test can put "now" inside or outside it at any time of day.

Prometheus rules (:func:`render_rules`)
    - optionally the ``for`` of named alerts, the ``interval`` of every group, and range
      windows inside expressions (``[1m]`` to ``[10s]``), for a fast loop;
    - optionally the watched services: the value of the service selector
      (``=~"ollama_ollama`` becomes ``=~"loop_svc``) and the ``service`` label of the
      signal switch (rules/ollama-scaling.rules.yml), for a loop that scales its own service;
    - optionally which signals the switch enables (``signals=["cpu"]`` keeps only the
      switch records of those signals), for a loop that measures only some of them.

Everything else (expressions, thresholds, labels, annotations, routes, matchers,
inhibition) comes through unchanged. Unknown names (an alert, a receiver, a time
interval that the shipped file does not have) raise ``ValueError`` rather than render a
file that silently differs from what was asked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from receiver.routes import TIMING_KEYS, matching_routes
from receiver.timeutil import parse_duration

AUTOSCALER_RECEIVER = "autoscaler"
SIGNAL_SWITCH = "swarm_service:scaling_signal:enabled"  # the records that enable a signal
BUSINESS_HOURS_INTERVAL = "business-hours"


def _load(path: str | Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top")
    return data


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL, templates) as literal blocks, readable when debugging."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def _dump(data: Mapping[str, Any]) -> str:
    return yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def parse_duration_ms(text: str) -> int:
    """Milliseconds in a Prometheus/Alertmanager duration such as ``2m15s`` or ``500ms``."""
    return round(parse_duration(text) * 1000)


def route_timings(config: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, str]:
    """group_wait, group_interval and repeat_interval of the route these labels land on
    (the product's route walker, ``receiver.routes``, with Alertmanager's defaults)."""
    return matching_routes(config, labels)[0].timings


def resend_period_ms(group_interval: str, repeat_interval: str) -> int:
    """How often Alertmanager re-sends an unchanged, still-firing group.

    It checks the group once per group_interval and re-sends at the first check at which
    strictly more than repeat_interval has passed since the last send was logged. When
    repeat_interval is not a multiple of group_interval that is simply repeat_interval
    rounded up to the next tick, which this returns. At an exact multiple the outcome
    depends on sub-millisecond timing (that tick or the next: both were seen on
    Alertmanager 0.25), so the shipped values sit half a tick off a multiple.
    """
    tick = parse_duration_ms(group_interval)
    repeat = parse_duration_ms(repeat_interval)
    if repeat % tick == 0:
        raise ValueError(f"repeat_interval {repeat_interval} is a multiple of group_interval {group_interval}: "
                         "the re-send lands on that tick or the next")
    return (repeat // tick + 1) * tick


def _routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes") or []:
        yield from _routes(child)


def _named(items: Sequence[dict[str, Any]], name: str, what: str, path: str | Path) -> dict[str, Any]:
    for item in items:
        if item.get("name") == name:
            return item
    raise ValueError(f"{path}: no {what} named {name!r}")


def render_alertmanager_config(
    shipped_path: str | Path,
    webhook_url: str,
    token_file: str | Path,
    *,
    group_wait: str | None = None,
    group_interval: str | None = None,
    repeat_interval: str | None = None,
    timing_scale: float | None = None,
    time_zone: str | None = None,
    business_weekdays: Sequence[str] | None = None,
    business_times: tuple[str, str] | None = None,
) -> str:
    """The shipped alertmanager.yml with the webhook, timings and business hours replaced.

    ``business_weekdays`` uses Alertmanager's syntax (``["monday:friday"]``, ``["tuesday"]``);
    ``business_times`` is ``(start_time, end_time)`` as ``"HH:MM"``; ``time_zone`` is an
    IANA name for the interval's ``location``.
    """
    config = _load(shipped_path)

    receiver = _named(config.get("receivers") or [], AUTOSCALER_RECEIVER, "receiver", shipped_path)
    webhooks = receiver.get("webhook_configs") or []
    if not webhooks:
        raise ValueError(f"{shipped_path}: receiver {AUTOSCALER_RECEIVER!r} has no webhook_configs")
    for webhook in webhooks:
        webhook["url"] = webhook_url
        auth = webhook.setdefault("http_config", {}).setdefault("authorization", {})
        auth["credentials_file"] = str(token_file)

    root = config["route"]
    if timing_scale is not None:
        for route in _routes(root):
            for key in TIMING_KEYS:
                if key in route:
                    route[key] = f"{max(1, round(parse_duration_ms(route[key]) * timing_scale))}ms"
    timings = dict(zip(TIMING_KEYS, (group_wait, group_interval, repeat_interval), strict=False))
    for key, value in timings.items():
        if value is None:
            continue
        for route in _routes(root):
            if route is root or key in route:
                route[key] = value

    if time_zone is not None or business_weekdays is not None or business_times is not None:
        interval = _named(
            config.get("time_intervals") or [], BUSINESS_HOURS_INTERVAL, "time interval", shipped_path
        )
        for entry in interval["time_intervals"]:
            if time_zone is not None:
                entry["location"] = time_zone
            if business_weekdays is not None:
                entry["weekdays"] = list(business_weekdays)
            if business_times is not None:
                entry["times"] = [{"start_time": business_times[0], "end_time": business_times[1]}]

    return _dump(config)


def render_rules(
    shipped_path: str | Path,
    *,
    for_overrides: Mapping[str, str] | None = None,
    interval: str | None = None,
    range_overrides: Mapping[str, str] | None = None,
    selectors: Mapping[str, str] | None = None,
    signals: Sequence[str] | None = None,
) -> str:
    """A shipped rule file with shorter ``for``, group ``interval`` and range windows.

    ``for_overrides`` maps alert names to durations (``{"OllamaHighCPU": "10s"}``);
    ``range_overrides`` maps a range to another in every expression (``{"1m": "10s"}``
    turns ``rate(x[1m])`` into ``rate(x[10s])``); ``selectors`` maps the start of a
    regular-expression matcher's value to another (``{"ollama_ollama": "loop_svc"}`` turns
    ``=~"ollama_ollama"`` into ``=~"loop_svc"`` and ``=~"ollama_ollama@.+"`` into
    ``=~"loop_svc@.+"``), and the same start of the ``service`` label of the signal switch;
    ``signals`` keeps only the switch records (``SIGNAL_SWITCH``) of the named signals.
    """
    rules = _load(shipped_path)
    remaining = dict(for_overrides or {})
    unused_ranges = set(range_overrides or {})
    unused_selectors = set(selectors or {})
    unused_signals = set(signals or ())
    for group in rules.get("groups") or []:
        if interval is not None:
            group["interval"] = interval
        if signals is not None:
            switches = [r for r in group.get("rules") or [] if r.get("record") == SIGNAL_SWITCH]
            unused_signals -= {r["labels"]["signal"] for r in switches}
            group["rules"] = [r for r in group.get("rules") or []
                              if r.get("record") != SIGNAL_SWITCH or r["labels"]["signal"] in signals]
        for rule in group.get("rules") or []:
            name = rule.get("alert")
            if name in remaining:
                rule["for"] = remaining.pop(name)
            for old, new in (range_overrides or {}).items():
                if f"[{old}]" in rule["expr"]:
                    rule["expr"] = rule["expr"].replace(f"[{old}]", f"[{new}]")
                    unused_ranges.discard(old)
            for old, new in (selectors or {}).items():
                if f'=~"{old}' in rule["expr"]:
                    rule["expr"] = rule["expr"].replace(f'=~"{old}', f'=~"{new}')
                    unused_selectors.discard(old)
                service = (rule.get("labels") or {}).get("service", "")
                if rule.get("record") == SIGNAL_SWITCH and service.startswith(old):
                    rule["labels"]["service"] = new + service[len(old):]
                    unused_selectors.discard(old)
    if remaining:
        raise ValueError(f"{shipped_path}: no alert named {', '.join(sorted(remaining))}")
    if unused_ranges:
        raise ValueError(f"{shipped_path}: no expression has the range {', '.join(sorted(unused_ranges))}")
    if unused_selectors:
        raise ValueError(f"{shipped_path}: no expression selects {', '.join(sorted(unused_selectors))}")
    if unused_signals:
        raise ValueError(f"{shipped_path}: no signal switch for {', '.join(sorted(unused_signals))}")
    return _dump(rules)
