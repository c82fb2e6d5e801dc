"""``autoscaler backtest``: replay scaling rules over history before deploying them.

1. The scaling alerts of a rule file (alerts with a ``scale`` label) are evaluated over
   ``[from, to]`` through Prometheus' range-query API, one point per rule-group interval.
   Recording rules of the same file are inlined into the expressions, so history recorded
   before the rules existed (or by other rules) can be replayed.
2. ``for`` is applied: an alert fires once its expression held at every point for that long.
3. Alertmanager's timings are applied per group (alert name and service): the first
   notification ``group_wait`` after it fires, re-sends at the first ``group_interval`` tick
   at which more than ``repeat_interval`` has passed; a firing scale-up inhibits the
   scale-down of the same service; scale-down is muted in the route's mute time intervals.
4. Each notification goes through the receiver's own policy (``policy.decide``) with the
   configuration's bounds, steps and cooldowns, starting from ``--replicas``.

The replay cannot know how the load would have spread over the replicas it adds: it reads
utilisation as history recorded it. So it answers "when would these rules have asked, and
what would the receiver have done", not "what would utilisation have become".
"""

from .replay import (
           Replay,
           RouteTimings,
           firing_times,
           main,
           notifications,
           replay,
           route_timings,
)
from .rules import ScalingRule, inline_recording_rules, scaling_rules

__all__ = ["Replay", "RouteTimings", "ScalingRule", "firing_times", "inline_recording_rules", "main",
           "notifications", "replay", "route_timings", "scaling_rules"]
