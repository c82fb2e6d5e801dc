"""What the gate asks the engine for each allowed ``Op``, and what it hands back.

Every upstream path, query and body is built here from the ``Op`` and from what the gate read
itself; a service or config is resolved by the gate (exact name, or full ID) before anything
is written, so an ID prefix or a name prefix can never select another object.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..record_store import RECORD_LABEL
from .changes import MAX_RECORDS_PER_SERVICE, record_of, record_to_create, reduced_info, reduced_version, updated_spec
from .routes import Kind, Op, Refused, parse_json, refused
from .scope import Scope
from .upstream import Answer, Upstream

FULL_ID = re.compile(r"[a-z0-9]{25}")


class Relay(Exception):
    """The engine's own answer (an error, or an object that is not the one asked for) goes back as it is."""

    def __init__(self, answer: Answer):
        self.answer = answer
        super().__init__(answer.status)


def _json(data: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(data).encode(), "application/json")


def _not_found(what: str) -> Relay:
    return Relay(_json({"message": f"{what} not found"}, 404))


def _ok(answer: Answer) -> Any:
    if answer.status != 200:
        raise Relay(answer)
    return answer.json()


def handler_name(kind: Kind) -> str:
    return "_" + kind.value.replace(" ", "_")


class Forwarder:
    def __init__(self, scope: Scope, upstream: Upstream):
        self.scope = scope
        self.upstream = upstream
        # The last inspect of each configured service, by full ID. A Swarm ID is never reused, so
        # a task list by one of these needs no inspect first; and a service's Version.Index moves
        # with every change, so an update for the version seen here is judged against the spec
        # seen here, which the engine's version check then guarantees is still the current one.
        self._seen: dict[str, dict[str, Any]] = {}

    async def __call__(self, op: Op, body: bytes) -> tuple[Answer, str]:
        """The answer for ``op``, and the configured service it concerned ("" for none)."""
        answer: tuple[Answer, str] = await getattr(self, handler_name(op.kind))(op, body)
        return answer

    async def _service(self, op: Op, ref: str) -> dict[str, Any]:
        """The configured service ``ref`` names: by its exact name, or by its full ID."""
        if ref not in self.scope and not FULL_ID.fullmatch(ref):
            raise refused(f"the service {ref[:80]!r} is not a configured service")
        service: dict[str, Any] = _ok(await self.upstream.call("GET", f"{op.prefix}/services/{ref}"))
        name = service.get("Spec", {}).get("Name")
        if ref in self.scope and name != ref:
            raise _not_found(f"service {ref}")  # the engine matched an ID prefix of another service
        if ref not in self.scope and (service.get("ID") != ref or name not in self.scope):
            raise refused(f"the service {ref} is not a configured service")
        self._seen[service["ID"]] = service
        return service

    async def _ping(self, op: Op, body: bytes) -> tuple[Answer, str]:
        return await self.upstream.call("HEAD" if op.head else "GET", f"{op.prefix}/_ping"), ""

    async def _version(self, op: Op, body: bytes) -> tuple[Answer, str]:
        return _json(reduced_version(_ok(await self.upstream.call("GET", f"{op.prefix}/version")))), ""

    async def _info(self, op: Op, body: bytes) -> tuple[Answer, str]:
        return _json(reduced_info(_ok(await self.upstream.call("GET", f"{op.prefix}/info")))), ""

    async def _list_services(self, op: Op, body: bytes) -> tuple[Answer, str]:
        params = {"filters": json.dumps({"name": list(op.names)})}
        if "status" in op.params:
            params["status"] = str(op.params["status"]).lower()
        services = _ok(await self.upstream.call("GET", f"{op.prefix}/services", params=params))
        shown = [s for s in services if s.get("Spec", {}).get("Name") in op.names and s["Spec"]["Name"] in self.scope]
        return _json(shown), ",".join(s["Spec"]["Name"] for s in shown)

    async def _inspect_service(self, op: Op, body: bytes) -> tuple[Answer, str]:
        if op.params.get("insertDefaults"):
            raise refused("insertDefaults: the receiver reads services as they are")
        service = await self._service(op, op.ref)
        return _json(service), service["Spec"]["Name"]

    async def _list_tasks(self, op: Op, body: bytes) -> tuple[Answer, str]:
        service = self._seen.get(op.ref) or await self._service(op, op.ref)
        service_id, name = service["ID"], service["Spec"]["Name"]
        filters: dict[str, list[str]] = {"service": [service_id]}
        if op.params["desired-state"]:
            filters["desired-state"] = op.params["desired-state"]
        tasks = _ok(await self.upstream.call("GET", f"{op.prefix}/tasks", params={"filters": json.dumps(filters)}))
        return _json([t for t in tasks if t.get("ServiceID") == service_id]), name

    async def _update_service(self, op: Op, body: bytes) -> tuple[Answer, str]:
        requested = parse_json(body)
        service = self._seen.get(op.ref)
        if service is None or service["Version"]["Index"] != op.params["version"]:
            service = await self._service(op, op.ref)
        name = service["Spec"]["Name"]
        version = service["Version"]["Index"]
        if op.params["version"] != version:
            # As the engine answers it, first: the client read an older spec, so comparing with
            # the current one would name someone else's change; it re-reads and tries again.
            raise Refused(409, f"update out of sequence: {name} is at version {version}, "
                               f"the update was for {op.params['version']}")
        spec = updated_spec(service["Spec"], requested, name, self.scope)
        answer = await self.upstream.call("POST", f"{op.prefix}/services/{service['ID']}/update",
                                          params={"version": str(version)}, body=spec)
        return answer, name

    async def _records(self, op: Op, names: tuple[str, ...]) -> list[dict[str, Any]]:
        filters = {"label": [f"{RECORD_LABEL}={n}" for n in names]}
        configs = _ok(await self.upstream.call("GET", f"{op.prefix}/configs", params={"filters": json.dumps(filters)}))
        return [c for c in configs if record_of(c, self.scope) in names]

    async def _list_configs(self, op: Op, body: bytes) -> tuple[Answer, str]:
        return _json(await self._records(op, op.names)), ",".join(op.names)

    async def _create_config(self, op: Op, body: bytes) -> tuple[Answer, str]:
        service, config = record_to_create(parse_json(body), self.scope)
        if len(await self._records(op, (service,))) >= MAX_RECORDS_PER_SERVICE:
            raise refused(f"{service} already has {MAX_RECORDS_PER_SERVICE} records; the receiver keeps one")
        return await self.upstream.call("POST", f"{op.prefix}/configs/create", body=config), service

    async def _remove_config(self, op: Op, body: bytes) -> tuple[Answer, str]:
        if not FULL_ID.fullmatch(op.ref):
            raise refused("a config is removed by its full ID")
        config = _ok(await self.upstream.call("GET", f"{op.prefix}/configs/{op.ref}"))
        service = record_of(config, self.scope)
        if config.get("ID") != op.ref or service is None:
            raise refused(f"the config {op.ref} is not a record of a configured service")
        return await self.upstream.call("DELETE", f"{op.prefix}/configs/{op.ref}"), service

