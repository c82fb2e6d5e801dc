"""One request line -> one ``Op`` the gate knows, or ``Refused``. Pure: no I/O.

The path is matched as the client sent it (``raw_path``), before any decoding or dot-segment
folding, against a closed list; the query is parsed into known parameters and nothing the
client wrote is forwarded as text: the server builds every upstream request from the ``Op``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from ..record_store import RECORD_LABEL
from .scope import Scope


class Refused(Exception):
    """A request the gate does not forward. ``status`` is the HTTP answer (4xx)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def refused(why: str) -> Refused:
    return Refused(403, f"refused by the docker gate: {why}")


class Kind(StrEnum):
    PING = "ping"
    VERSION = "version"
    INFO = "info"
    LIST_SERVICES = "list services"
    INSPECT_SERVICE = "inspect service"
    UPDATE_SERVICE = "update service"
    LIST_TASKS = "list tasks"
    LIST_CONFIGS = "list configs"
    CREATE_CONFIG = "create config"
    REMOVE_CONFIG = "remove config"
    EVENTS = "service events"


@dataclass(frozen=True)
class Op:
    kind: Kind
    prefix: str = ""  # "/v1.41" as the client asked, or "" for the unversioned API
    ref: str = ""  # the service or config named in the path
    names: tuple[str, ...] = ()  # configured services a list asks for
    params: dict[str, Any] = field(default_factory=dict)
    head: bool = False

    @property
    def has_body(self) -> bool:
        return self.kind in (Kind.UPDATE_SERVICE, Kind.CREATE_CONFIG)


_REF = r"(?P<ref>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})"
_ROUTES: list[tuple[frozenset[str], re.Pattern[str], Kind]] = [
    (frozenset({"GET", "HEAD"}), re.compile(r"/_ping"), Kind.PING),
    (frozenset({"GET"}), re.compile(r"/version"), Kind.VERSION),
    (frozenset({"GET"}), re.compile(r"/info"), Kind.INFO),
    (frozenset({"GET"}), re.compile(r"/services"), Kind.LIST_SERVICES),
    (frozenset({"GET"}), re.compile(rf"/services/{_REF}"), Kind.INSPECT_SERVICE),
    (frozenset({"POST"}), re.compile(rf"/services/{_REF}/update"), Kind.UPDATE_SERVICE),
    (frozenset({"GET"}), re.compile(r"/tasks"), Kind.LIST_TASKS),
    (frozenset({"GET"}), re.compile(r"/configs"), Kind.LIST_CONFIGS),
    (frozenset({"POST"}), re.compile(r"/configs/create"), Kind.CREATE_CONFIG),
    (frozenset({"DELETE"}), re.compile(rf"/configs/{_REF}"), Kind.REMOVE_CONFIG),
    (frozenset({"GET"}), re.compile(r"/events"), Kind.EVENTS),
]
_VERSIONED = re.compile(r"(?P<prefix>/v1\.[0-9]{1,3})?(?P<rest>/[A-Za-z0-9_./-]*)")
# Parameters each kind accepts; anything else is refused by name (rollback, registryAuthFrom, ...).
_PARAMS: dict[Kind, frozenset[str]] = {
    Kind.LIST_SERVICES: frozenset({"filters", "status"}),
    Kind.INSPECT_SERVICE: frozenset({"insertDefaults"}),
    Kind.UPDATE_SERVICE: frozenset({"version"}),
    Kind.LIST_TASKS: frozenset({"filters"}),
    Kind.LIST_CONFIGS: frozenset({"filters"}),
    Kind.EVENTS: frozenset({"filters"}),
}
TASK_STATES = frozenset({"running", "shutdown", "accepted", "ready"})
_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Refused(400, f"malformed JSON: the key {key[:60]!r} appears twice")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise Refused(400, f"malformed JSON: {name} is not a JSON number")


def parse_json(data: bytes | str) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN or Infinity; ``Refused(400)`` otherwise."""
    try:
        return json.loads(data, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except Refused:
        raise
    except (ValueError, RecursionError) as err:
        raise Refused(400, f"malformed JSON: {str(err)[:120]}") from None


def _filters(raw: str, allowed: frozenset[str]) -> dict[str, list[str]]:
    filters = parse_json(raw)
    if not isinstance(filters, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in filters.values()
    ):
        raise Refused(400, "filters must be a JSON object of lists of strings")
    for key in filters:
        if key not in allowed:
            raise refused(f"the filter {key[:60]!r} (allowed here: {', '.join(sorted(allowed))})")
    return filters


def _query(kind: Kind, query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query), errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "malformed query string") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key not in _PARAMS.get(kind, frozenset()):
            raise refused(f"the query parameter {key[:60]!r} on {kind}")
        if key in params:
            raise Refused(400, f"the query parameter {key!r} appears twice")
        params[key] = value
    return params


def _boolean(params: Mapping[str, str], key: str) -> dict[str, bool]:
    if key not in params:
        return {}
    if params[key] not in _BOOLEAN:
        raise Refused(400, f"{key} must be true or false")
    return {key: _BOOLEAN[params[key]]}


def _named(names: list[str], what: str) -> tuple[str, ...]:
    if not names:
        raise refused(f"{what} without a filter naming a configured service")
    return tuple(names)


def _op_from(kind: Kind, prefix: str, ref: str, params: dict[str, str], scope: Scope) -> Op:
    if kind == Kind.LIST_SERVICES:
        names = _filters(params.get("filters", "{}"), frozenset({"name"})).get("name", [])
        # Any names may be asked (the engine matches prefixes): the answer shows only configured ones.
        return Op(kind, prefix, names=_named(names, "listing services"), params=_boolean(params, "status"))
    if kind == Kind.INSPECT_SERVICE:
        return Op(kind, prefix, ref, params=_boolean(params, "insertDefaults"))
    if kind == Kind.UPDATE_SERVICE:
        version = params.get("version", "")
        if not version.isascii() or not version.isdigit() or len(version) > 19:
            raise Refused(400, "a service update needs ?version=<the service's Version.Index>")
        return Op(kind, prefix, ref, params={"version": int(version)})
    if kind == Kind.LIST_TASKS:
        filters = _filters(params.get("filters", "{}"), frozenset({"service", "desired-state"}))
        if len(filters.get("service", [])) != 1:
            raise refused("listing tasks needs a filter naming exactly one configured service")
        states = filters.get("desired-state", [])
        if not set(states) <= TASK_STATES:
            raise Refused(400, f"desired-state must be among {', '.join(sorted(TASK_STATES))}")
        return Op(kind, prefix, filters["service"][0], params={"desired-state": states})
    if kind == Kind.LIST_CONFIGS:
        labels = _filters(params.get("filters", "{}"), frozenset({"label"})).get("label", [])
        names = [label.partition("=")[2] for label in labels if label.startswith(f"{RECORD_LABEL}=")]
        if len(names) != len(labels) or not all(n in scope for n in names):
            raise refused(f"listing configs other than by the label {RECORD_LABEL}=<a configured service>")
        return Op(kind, prefix, names=_named(names, "listing configs"))
    if kind == Kind.EVENTS:
        # Service events only, and only of the configured services: the gate sends the engine its own
        # filters (the client's may narrow nothing further and name nothing else).
        types = _filters(params.get("filters", "{}"), frozenset({"type"})).get("type", [])
        if types != ["service"]:
            raise refused("events other than service events")
        return Op(kind, prefix, names=tuple(sorted(scope.services)))
    return Op(kind, prefix, ref)


def parse_request(method: str, raw_path: str, headers: Mapping[str, str], scope: Scope) -> Op:
    """The operation a request asks for, or ``Refused`` naming why it is not one the gate allows."""
    path, _, query = raw_path.partition("?")
    for header in headers:
        if header.lower().startswith("x-registry"):
            raise refused(f"the header {header[:60]}: the gate never passes registry credentials")
    match = _VERSIONED.fullmatch(path)
    if match is None or "//" in path or "/./" in path or "/../" in path or path.endswith(("/.", "/..")):
        raise refused(f"the path {path[:100]!r} is not in plain form (no escapes, no dot or empty segments)")
    rest = match["rest"]
    for methods, pattern, kind in _ROUTES:
        found = pattern.fullmatch(rest)
        if found is None:
            continue
        if method not in methods:
            raise refused(f"{method[:10]} {rest[:100]} (only {', '.join(sorted(methods))} here)")
        params = _query(kind, query)
        op = _op_from(kind, match["prefix"] or "", found.groupdict().get("ref") or "", params, scope)
        return replace(op, head=method == "HEAD")
    raise refused(f"{method[:10]} {rest[:100]} is not part of what the receiver needs")
