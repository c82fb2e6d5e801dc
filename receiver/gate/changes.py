"""What a write may change and what a read may show. Pure: values in, values or ``Refused`` out.

A service update is judged against the spec the gate read itself: the requested spec may
differ from it only in ``Mode.Replicated.Replicas`` (within the configured bounds) and in the
values of the receiver's state labels. The gate then sends *the current spec* with those two
changed, never the client's body: what the engine receives is built here, so no spelling of
the body (duplicate keys, other letter case, escapes) can carry anything else.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from typing import Any

from ..record_store import RECORD_LABEL, RECORD_PREFIX, RECORD_VERSION_LABEL
from ..state import STATE_LABELS, InvalidStateLabel, decode_time
from .routes import Refused, parse_json, refused
from .scope import Scope

# The labels the receiver writes on a service. Other swarm-autoscaler.* labels are not its to
# change: swarm-autoscaler.paused is the operator's switch, and a future label is added here
# on purpose, not by a prefix.
WRITABLE_LABELS = frozenset(STATE_LABELS.values())
MAX_RECORD_BYTES = 16 * 1024
MAX_RECORDS_PER_SERVICE = 16
_RECORD_NAME = re.compile(re.escape(RECORD_PREFIX) + r"[a-z0-9-]{1,64}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _step(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    text = str(key)[:80]
    if _IDENTIFIER.fullmatch(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{text!r}]"


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def first_difference(current: Any, requested: Any, path: str = "") -> str | None:
    """The path of the first place where two JSON values differ, or None. An absent key,
    ``null``, ``{}`` and ``[]`` are the same (the gate sends the current spec, never the
    requested one, so this only decides what counts as "no change"); everything else is
    compared by type and value (``1`` is not ``1.0`` nor ``true``)."""
    if _empty(current) and _empty(requested):
        return None
    if isinstance(current, dict) and isinstance(requested, dict):
        for key in sorted(set(current) | set(requested), key=str):
            found = first_difference(current.get(key), requested.get(key), _step(path, key))
            if found is not None:
                return found
        return None
    if isinstance(current, list) and isinstance(requested, list):
        for i in range(max(len(current), len(requested))):
            if i >= len(current) or i >= len(requested):
                return _step(path, i)
            found = first_difference(current[i], requested[i], _step(path, i))
            if found is not None:
                return found
        return None
    if type(current) is not type(requested) or current != requested:
        return path or "(the whole spec)"
    return None


def _replicas(spec: dict[str, Any], whose: str) -> int:
    mode = spec.get("Mode")
    replicated = mode.get("Replicated") if isinstance(mode, dict) else None
    replicas = replicated.get("Replicas") if isinstance(replicated, dict) else None
    if type(replicas) is not int:
        if whose == "current":
            raise refused("Mode: the service is not replicated, so it cannot be scaled")
        raise refused("Mode.Replicated.Replicas must be a whole number")
    return replicas


def _without_allowed(spec: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    out["Mode"]["Replicated"].pop("Replicas", None)
    labels = out.get("Labels")
    if isinstance(labels, dict):
        out["Labels"] = {k: v for k, v in labels.items() if k not in WRITABLE_LABELS}
    return out


def _label_changes(current: dict[str, Any], requested: dict[str, Any]) -> dict[str, str]:
    before = current.get("Labels") or {}
    after = requested.get("Labels") or {}
    if not isinstance(after, dict):
        raise refused("Labels must be an object")
    changes = {}
    for key in WRITABLE_LABELS:
        if key in before and key not in after:
            raise refused(f"Labels[{key!r}]: the gate sets state labels, it never removes them")
        value = after.get(key)
        if key in after and value != before.get(key):
            if not isinstance(value, str):
                raise refused(f"Labels[{key!r}] must be a string")
            try:
                decode_time(key, value)
            except InvalidStateLabel as err:
                raise refused(f"Labels[{key!r}]: {err}") from None
            changes[key] = value
    return changes


def updated_spec(current: dict[str, Any], requested: Any, name: str, scope: Scope) -> dict[str, Any]:
    """The spec to send for ``requested``: ``current`` with the new replicas and state labels.

    ``Refused`` names the first field that differs otherwise, or a replica count outside the
    configured bounds (an unchanged count is always accepted, as an operator may have set it).
    """
    if not isinstance(requested, dict):
        raise Refused(400, "a service spec must be a JSON object")
    was = _replicas(current, "current")
    wanted = _replicas(requested, "requested")
    labels = _label_changes(current, requested)
    difference = first_difference(_without_allowed(current), _without_allowed(requested))
    if difference is not None:
        raise refused(
            f"{difference} differs from the service's current spec; only Mode.Replicated.Replicas "
            f"and the labels {', '.join(sorted(WRITABLE_LABELS))} may change"
        )
    bounds = scope.services[name]
    if wanted != was and not bounds.min_replicas <= wanted <= bounds.max_replicas:
        raise refused(
            f"Mode.Replicated.Replicas={wanted} is outside {name}'s configured bounds "
            f"[{bounds.min_replicas}, {bounds.max_replicas}]"
        )
    spec = copy.deepcopy(current)
    spec["Mode"]["Replicated"]["Replicas"] = wanted
    if labels:
        spec["Labels"] = {**(current.get("Labels") or {}), **labels}
    return spec


def record_of(config: dict[str, Any], scope: Scope) -> str | None:
    """The configured service a Swarm config is the receiver's record of, or None."""
    spec = config.get("Spec") if isinstance(config, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("Name"), str):
        return None
    service = (spec.get("Labels") or {}).get(RECORD_LABEL)
    if not spec["Name"].startswith(RECORD_PREFIX) or service not in scope:
        return None
    return service


def record_to_create(body: Any, scope: Scope) -> tuple[str, dict[str, Any]]:
    """(service, the config-create body to send) for a record the receiver may write."""
    if not isinstance(body, dict):
        raise Refused(400, "a config must be a JSON object")
    for key, value in body.items():
        if key not in ("Name", "Labels", "Data") and value is not None:
            raise refused(f"{key[:60]}: a record config has only Name, Labels and Data")
    name, labels, data = body.get("Name"), body.get("Labels"), body.get("Data")
    if not isinstance(name, str) or not _RECORD_NAME.fullmatch(name):
        raise refused(f"Name: a config the receiver creates is named {RECORD_PREFIX}<lowercase letters, digits, ->")
    if not isinstance(labels, dict) or labels.get(RECORD_LABEL) not in scope:
        raise refused(f"Labels[{RECORD_LABEL!r}] must name a configured service")
    for key, value in labels.items():
        if key == RECORD_VERSION_LABEL and isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
            continue
        if key != RECORD_LABEL:
            raise refused(f"Labels[{key[:60]!r}]: a record carries only {RECORD_LABEL} and {RECORD_VERSION_LABEL} (digits)")
    if not isinstance(data, str) or len(data) > MAX_RECORD_BYTES * 4 // 3 + 4:
        raise refused(f"Data: a record is base64 of at most {MAX_RECORD_BYTES} bytes")
    try:
        decoded = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise Refused(400, "Data is not base64") from None
    if not isinstance(parse_json(decoded), dict):
        raise refused("Data: a record is a JSON object")
    return labels[RECORD_LABEL], {"Name": name, "Labels": dict(labels), "Data": data}


def reduced_info(info: Any) -> dict[str, Any]:
    """What the receiver's readiness reads of ``/info``: this node's swarm state, nothing else."""
    swarm = info.get("Swarm") if isinstance(info, dict) else None
    swarm = swarm if isinstance(swarm, dict) else {}
    return {"Swarm": {"LocalNodeState": swarm.get("LocalNodeState", "inactive"),
                      "ControlAvailable": bool(swarm.get("ControlAvailable"))}}


def reduced_version(version: Any) -> dict[str, Any]:
    """What docker-py's ``version="auto"`` reads of ``/version``."""
    version = version if isinstance(version, dict) else {}
    return {k: version[k] for k in ("ApiVersion", "MinAPIVersion", "Version") if k in version}
