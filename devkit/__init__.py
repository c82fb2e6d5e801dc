"""Helpers that run the shipped rules and Alertmanager configuration on loopback.

``render`` turns the shipped files into local ones (webhook, token file, shorter timings);
``procs`` starts real Alertmanager and Prometheus processes on free ports. Used by the
tests, the end-to-end loop and the demo; not imported by the receiver itself.
"""

from devkit.procs import Running, start_alertmanager, start_prometheus
from devkit.render import render_alertmanager_config, render_rules

__all__ = [
    "Running",
    "render_alertmanager_config",
    "render_rules",
    "start_alertmanager",
    "start_prometheus",
]
