"""What the gate may touch: the services the receiver's configuration names, with their bounds.

One list: the gate reads the receiver's own configuration file (``services``), so a service is
scalable through the gate exactly when the receiver is configured to scale it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config


@dataclass(frozen=True)
class Bounds:
    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class Scope:
    services: dict[str, Bounds]

    @classmethod
    def from_config(cls, config: Config) -> Scope:
        return cls({name: Bounds(p.min_replicas, p.max_replicas) for name, p in config.services.items()})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.services
