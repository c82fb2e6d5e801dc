"""The record store: one Swarm config per record write, labelled with the service's name and the
service version the record describes.

Configs are immutable, so each write creates a new one. The record of the highest service
version counts (not the writer's wall clock): a writer that read the service before another
receiver scaled it does not replace the newer record. Older records are removed after each
write, and every record of a service that is gone is removed by ``remove_records``. What a
record holds and when it is restored is decided in ``state.py``; this module only stores it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from .domain import SwarmError

if TYPE_CHECKING:
    from .dockerapi import Engine

log = logging.getLogger("receiver.records")

RECORD_PREFIX = "swarm-autoscaler-record-"
RECORD_LABEL = "swarm-autoscaler.record-of"
RECORD_VERSION_LABEL = "swarm-autoscaler.record-version"


def _version(config: dict[str, Any]) -> int:
    """The service version a stored record describes; -1 for records of older releases."""
    value = (config.get("Spec", {}).get("Labels") or {}).get(RECORD_VERSION_LABEL, "")
    return int(value) if value.isdigit() else -1


def _records(api: Engine, name: str) -> list[dict[str, Any]]:
    configs = api.configs({"label": [f"{RECORD_LABEL}={name}"]})
    # The label filter matches on the label's value; a name that is a prefix of another is not a match.
    mine = [c for c in configs if (c["Spec"].get("Labels") or {}).get(RECORD_LABEL) == name]
    return sorted(mine, key=_version)


def read_record(api: Engine, name: str) -> dict[str, Any] | None:
    """The newest record of ``name``, or None."""
    records = [r for r in _records(api, name) if _version(r) >= 0]
    if not records:
        return None
    try:
        data = json.loads(base64.b64decode(records[-1]["Spec"].get("Data", "")))
    except (ValueError, KeyError) as err:
        data = f"{type(err).__name__}: {err}"
    if not isinstance(data, dict):
        # Not ours to fail on: a bad record is never restored, and the next save replaces it.
        log.warning(json.dumps({"event": "record_unreadable", "service": name, "config": records[-1].get("ID"),
                                "error": str(data)[:200]}))
        return None
    return data


def write_record(api: Engine, name: str, record: dict[str, Any], version: int) -> bool:
    """Stores ``record`` (of service version ``version``) unless a record of a version as new or
    newer exists; removes the older ones. Returns whether it was stored."""
    existing = _records(api, name)
    if existing and _version(existing[-1]) >= version:
        return False
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    try:
        api.create_config(
            f"{RECORD_PREFIX}{digest}-{version}",
            json.dumps(record, sort_keys=True).encode(),
            labels={RECORD_LABEL: name, RECORD_VERSION_LABEL: str(version)},
        )
    except SwarmError as err:
        if err.status != 409:
            raise
        return False  # another receiver stored the record of this very version first
    remove_records(api, name, below=version)
    return True


def remove_records(api: Engine, name: str, below: int | None = None) -> int:
    """Removes the records of ``name`` (only those of versions below ``below``, if given)."""
    removed = 0
    for config in _records(api, name):
        if below is not None and _version(config) >= below:
            continue
        try:
            api.remove_config(config["ID"])
            removed += 1
        except SwarmError as err:
            if err.status != 404:  # 404: another receiver removed it first
                raise
    return removed
