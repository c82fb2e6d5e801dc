"""The links of the chain, in the chain's order, what one check of a link says, and the pure
checks of the links at both ends: the service itself, the webhook and the Docker access."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..config import ServicePolicy
from ..domain import ServiceNotFound, ServiceSnapshot, SwarmError, UpdateConflict
from ..state import PAUSE_LABEL, InvalidStateLabel, is_paused, service_state

# (code, title): the order in which the links are checked and printed.
LINKS = {
    "service": "service",
    "input_series": "input series",
    "recording_rules": "recording rules",
    "alert_rules": "alert rules",
    "route": "alertmanager route",
    "silences": "silences, mutes",
    "webhook": "webhook token",
    "docker_access": "docker access",
}


class State(StrEnum):
    OK = "ok"
    BROKEN = "broken"
    SKIPPED = "skipped"  # not checked: an earlier fact makes the check meaningless


@dataclass(frozen=True)
class Link:
    link: str  # a key of LINKS
    service: str
    state: State
    checked: str  # what was checked and what was found
    todo: str = ""  # when broken: what to do

    @property
    def title(self) -> str:
        return LINKS[self.link]

    def as_dict(self) -> dict[str, str]:
        answer = {"link": self.link, "service": self.service, "state": str(self.state), "checked": self.checked}
        if self.todo:
            answer["todo"] = self.todo
        return answer


def ok(link: str, service: str, checked: str) -> Link:
    return Link(link, service, State.OK, checked)


def broken(link: str, service: str, checked: str, todo: str) -> Link:
    return Link(link, service, State.BROKEN, checked, todo)


def skipped(link: str, service: str, checked: str) -> Link:
    return Link(link, service, State.SKIPPED, checked)


def service_link(name: str, policy: ServicePolicy, read: ServiceSnapshot | SwarmError) -> Link:
    """The service exists, is replicated, within its bounds, its state labels parse, not paused."""
    if isinstance(read, ServiceNotFound):
        return broken("service", name, f"no service named {name} in the swarm",
                      "use the exact name `docker service ls` shows (a stack's service is <stack>_<service>) "
                      "under services: in the configuration")
    if isinstance(read, SwarmError):
        return broken("service", name, f"could not read {name}: {str(read)[:200]}", "see docker access")
    if read.mode != "replicated":
        return broken("service", name, f"{name} is {read.mode}, not replicated", "only replicated services can be scaled")
    bounds = f"{policy.min_replicas}..{policy.max_replicas}"
    if not policy.min_replicas <= read.replicas <= policy.max_replicas:
        return broken("service", name, f"{name} asks for {read.replicas} replicas, outside its bounds {bounds}",
                      f"docker service scale {name}=N with N in {bounds}, or change its bounds in the configuration")
    try:
        service_state(read)
    except InvalidStateLabel as err:
        return broken("service", name, str(err), f"docker service update --label-rm {err.label} {name}")
    if is_paused(read.labels):
        return broken("service", name, f"{name} carries {PAUSE_LABEL}={read.labels[PAUSE_LABEL]}: scaling refused",
                      f"when the pause is over: docker service update --label-rm {PAUSE_LABEL} {name}")
    return ok("service", name, f"replicated, replicas {read.replicas} ({read.running} running) within {bounds}, "
              "state labels readable, not paused")


def docker_access_link(name: str, host: str, read: ServiceSnapshot | SwarmError, probe: SwarmError | None) -> Link:
    """Reading worked, and a no-op update with a stale version was refused only as out of sequence.

    ``probe`` is what that update raised (None: it was accepted, which the engine should never do).
    """
    if isinstance(read, ServiceNotFound):
        return skipped("docker_access", name, f"not checked: {name} does not exist")
    if isinstance(read, SwarmError):
        return broken("docker_access", name, f"reading {name} through {host} failed: {str(read)[:200]}",
                      "check docker.host and that the access layer allows GET /services/{id} and /tasks")
    if read.mode != "replicated":
        return skipped("docker_access", name, f"read through {host}; no update probed on a {read.mode} service")
    if isinstance(probe, UpdateConflict):
        return ok("docker_access", name, f"read through {host} (version {read.version}); an update with replicas "
                  "unchanged and a stale version was refused as out of sequence: writes are allowed, nothing changed")
    if probe is None:
        return broken("docker_access", name, "the engine accepted an update with a stale version (replicas unchanged)",
                      "report this: the engine should refuse a stale version")
    status = f"HTTP {probe.status}: " if probe.status else ""
    return broken("docker_access", name, f"a service update of {name} through {host} was refused: {status}{str(probe)[:200]}",
                  "allow POST /services/{id}/update for this service in the access layer at docker.host")


@dataclass(frozen=True)
class WebhookProbe:
    url: str
    with_token: int | None  # HTTP status with the configured token (or none when auth is off)
    without_token: int | None  # HTTP status without any token; None when auth is off
    error: str = ""  # no answer at all


def webhook_link(name: str, probe: WebhookProbe) -> Link:
    if probe.error:
        return broken("webhook", name, f"POST {probe.url}: no answer ({probe.error[:160]})",
                      "is the receiver running there? doctor defaults to the configuration's listen port "
                      "on 127.0.0.1; pass --receiver URL")
    if probe.with_token == 401:
        return broken("webhook", name, f"POST {probe.url} with the token of auth.bearer_token_file: 401",
                      "the receiver checks another token: the receiver's auth.bearer_token_file and Alertmanager's "
                      "credentials_file must hold the same token")
    if probe.with_token != 200:
        return broken("webhook", name, f"POST {probe.url} (a notification of no alert): HTTP {probe.with_token}",
                      "read the receiver's log for this request")
    if probe.without_token is None:
        return ok("webhook", name, f"POST {probe.url}: 200 (no token configured: anyone who reaches it can post)")
    if probe.without_token != 401:
        return broken("webhook", name, f"POST {probe.url} without a token: HTTP {probe.without_token}, not 401",
                      "this receiver does not check the token: give it auth.bearer_token_file")
    return ok("webhook", name, f"POST {probe.url} (a notification of no alert): 200 with the token, 401 without")
