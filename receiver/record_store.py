"""The record store: one Swarm config per record write, labelled with the service's name.

Configs are immutable, so each write creates a new one; the newest (highest sequence label)
counts, and older ones are removed after each write. What a record holds and when it is
restored is decided in ``state.py``; this module only stores and reads it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import docker
import docker.errors

from .domain import SwarmError

RECORD_PREFIX = "swarm-autoscaler-record-"
RECORD_LABEL = "swarm-autoscaler.record-of"
RECORD_SEQ_LABEL = "swarm-autoscaler.record-seq"


def _records(api: docker.APIClient, name: str) -> list[dict[str, Any]]:
    configs = api.configs(filters={"label": [f"{RECORD_LABEL}={name}"]})
    return sorted(configs, key=lambda c: int(c["Spec"]["Labels"].get(RECORD_SEQ_LABEL, "0")))


def read_record(api: docker.APIClient, name: str) -> dict[str, Any] | None:
    """The newest record of ``name``, or None."""
    records = _records(api, name)
    if not records:
        return None
    try:
        data = json.loads(base64.b64decode(records[-1]["Spec"].get("Data", "")))
    except (ValueError, KeyError) as err:
        raise SwarmError(f"unreadable record for {name}: {err}") from err
    if not isinstance(data, dict):
        raise SwarmError(f"unreadable record for {name}: not a JSON object")
    return data


def write_record(api: docker.APIClient, name: str, record: dict[str, Any]) -> None:
    """Stores ``record`` as the newest record of ``name`` and removes the older ones."""
    seq = time.time_ns() // 1_000_000
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    api.create_config(
        f"{RECORD_PREFIX}{digest}-{seq}",
        json.dumps(record, sort_keys=True).encode(),
        labels={RECORD_LABEL: name, RECORD_SEQ_LABEL: str(seq)},
    )
    for old in _records(api, name)[:-1]:
        try:
            api.remove_config(old["ID"])
        except docker.errors.NotFound:
            pass  # another receiver removed it first
