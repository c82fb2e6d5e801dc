"""The scheduled-minimum job on the fake swarm: a service below its window's minimum is raised
to it ``lead`` before the window, once, as a scale-up with its own reason; pause, dry run and a
freeze by silence hold it; after the window, scale-down alerts take the replicas down again."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from devkit.fakes import FakeService, FakeSwarm
from receiver.domain import DockerUnavailable
from receiver.silences import freeze_matchers
from receiver.state import PAUSE_LABEL, STATE_LABELS, encode_time

from .conftest import SERVICE, alert, payload, post_json, sample
from .test_jobs import until
from .test_schedule import at

WINDOW = {"name": "morning", "min_replicas": 3, "lead": "15m",
          "time_intervals": [{"times": [{"start_time": "08:00", "end_time": "09:00"}]}]}
SCHEDULED = {"min_replicas": 1, "max_replicas": 4, "scale_up_cooldown": "2m", "scale_down_cooldown": "5m",
             "schedules": [WINDOW]}


def scheduled(**extra: Any) -> dict[str, Any]:
    return {"services": {SERVICE: dict(SCHEDULED)}, "schedule_interval": 0.01, **extra}


def raises(registry: Any) -> float:
    return sample(registry, "autoscaler_decisions_total", service=SERVICE, direction="up", reason="scheduled_minimum")


def inspections(fake: FakeSwarm) -> int:
    return fake.calls.count(f"inspect {SERVICE}")


async def sweeps(fake: FakeSwarm, count: int = 5) -> None:
    """Wait for ``count`` more sweeps that read the service."""
    seen = inspections(fake)
    await until(lambda: inspections(fake) >= seen + count, f"{count} sweeps")


async def test_a_service_is_raised_lead_before_its_window_once_and_scaled_down_after_it(make_client, clock, fake):
    clock.now = at("2026-12-07 07:44:59")
    client, registry = await make_client(**scheduled())
    await sweeps(fake)
    assert fake.services[SERVICE].replicas == 1 and not fake.updates, "a second before the lead: not raised"
    assert sample(registry, "autoscaler_min_replicas", service=SERVICE) == 1

    clock.now = at("2026-12-07 07:45:00")
    await until(lambda: fake.services[SERVICE].replicas == 3, "the raise to the window's minimum")
    raised_at = clock.now
    assert fake.services[SERVICE].labels[STATE_LABELS["up"]] == encode_time(raised_at)
    await until(lambda: SERVICE in fake.records, "the record of the raise")
    assert fake.records[SERVICE]["replicas"] == 3
    await sweeps(fake)
    assert fake.updates == [f"update {SERVICE} 3"], "raised once, not at every sweep"
    assert raises(registry) == 1
    assert sample(registry, "autoscaler_scale_events_total", service=SERVICE, direction="up") == 1
    assert sample(registry, "autoscaler_min_replicas", service=SERVICE) == 3

    body = await (await client.get("/status")).json()
    entry = body["services"][0]
    assert (entry["effective_min_replicas"], entry["min_replicas"]) == (3, 1)
    assert entry["schedules"] == [{"index": 0, "name": "morning", "min_replicas": 3, "active": False,
                                   "starts_at": "2026-12-07T08:00:00.000000Z"}]
    assert entry["last_decision"]["reason"] == "scheduled_minimum"

    clock.now = at("2026-12-07 08:30:00")
    answer = await (await post_json(client, payload(alert(SERVICE, "down")))).json()
    assert (answer["decisions"][0]["reason"], answer["decisions"][0]["to"]) == ("at_min", 3)

    clock.now = at("2026-12-07 09:00:00")
    answer = await (await post_json(client, payload(alert(SERVICE, "down")))).json()
    assert (answer["decisions"][0]["reason"], answer["decisions"][0]["to"]) == ("scaled_down", 2)
    await sweeps(fake)
    assert fake.services[SERVICE].replicas == 2, "after the window nothing raises it again"
    assert sample(registry, "autoscaler_min_replicas", service=SERVICE) == 1


async def test_the_raise_ignores_the_scale_up_cooldown(make_client, clock):
    clock.now = at("2026-12-07 08:10:00")
    fake = FakeSwarm(FakeService(SERVICE, replicas=1, labels={STATE_LABELS["up"]: encode_time(clock.now - 10)}))
    _, registry = await make_client(swarm=fake, **scheduled())
    await until(lambda: raises(registry) == 1, "the raise inside the cooldown")
    assert fake.services[SERVICE].replicas == 3


async def test_a_paused_service_is_not_raised(make_client, clock):
    clock.now = at("2026-12-07 08:10:00")
    fake = FakeSwarm(FakeService(SERVICE, replicas=1, labels={PAUSE_LABEL: "true"}))
    _, registry = await make_client(swarm=fake, **scheduled())
    await sweeps(fake)
    assert fake.services[SERVICE].replicas == 1 and not fake.updates
    assert raises(registry) == 0 and sample(registry, "autoscaler_decisions_total", service=SERVICE,
                                             direction="up", reason="paused") == 0, "held quietly, not at every sweep"


async def test_a_dry_run_reports_the_raise_once_and_changes_nothing(make_client, clock, fake):
    clock.now = at("2026-12-07 08:10:00")
    client, registry = await make_client(dry_run=True, **scheduled())
    await until(lambda: raises(registry) == 1, "the would-raise")
    await sweeps(fake, 10)
    assert raises(registry) == 1, "reported once"
    assert fake.services[SERVICE].replicas == 1 and not fake.updates
    entry = (await (await client.get("/status")).json())["services"][0]
    assert entry["last_decision"]["dry_run"] == "would"


async def test_a_failed_sweep_is_counted_and_the_next_one_raises(make_client, clock, fake):
    clock.now = at("2026-12-07 08:10:00")
    fake.failures = [DockerUnavailable("engine restarting")]
    _, registry = await make_client(**scheduled())
    await until(lambda: fake.services[SERVICE].replicas == 3, "the raise after the failure")
    assert sample(registry, "autoscaler_background_errors_total", job="schedule") == 1


async def test_a_freeze_by_silence_holds_the_raise_until_it_is_lifted(aiohttp_server, make_client, clock, fake):
    answer: list[dict[str, Any]] = [{"id": "f", "status": {"state": "active"}, "endsAt": "2026-12-07T12:00:00Z",
                                     "matchers": freeze_matchers(SERVICE)}]

    async def silences(_: web.Request) -> web.Response:
        return web.json_response(answer)

    alertmanager = web.Application()
    alertmanager.router.add_get("/api/v2/silences", silences)
    server = await aiohttp_server(alertmanager)
    clock.now = at("2026-12-07 08:10:00")
    _, registry = await make_client(alertmanager={"url": str(server.make_url("")), "poll_interval": 0.01}, **scheduled())
    await until(lambda: sample(registry, "autoscaler_frozen", service=SERVICE) == 1, "the freeze to be read")
    await until(lambda: sample(registry, "autoscaler_min_replicas", service=SERVICE) == 3, "a sweep")
    await asyncio.sleep(0.2)  # some twenty sweeps
    assert fake.services[SERVICE].replicas == 1 and not fake.updates, "frozen: not raised"

    answer[:] = []
    await until(lambda: raises(registry) == 1, "the raise once the freeze is lifted")
    assert fake.services[SERVICE].replicas == 3


async def test_no_raise_before_the_silences_could_be_read(aiohttp_server, make_client, clock, fake):
    async def down(_: web.Request) -> web.Response:
        return web.Response(status=500)

    alertmanager = web.Application()
    alertmanager.router.add_get("/api/v2/silences", down)
    server = await aiohttp_server(alertmanager)
    clock.now = at("2026-12-07 08:10:00")
    _, registry = await make_client(alertmanager={"url": str(server.make_url("")), "poll_interval": 0.01}, **scheduled())
    await until(lambda: sample(registry, "autoscaler_background_errors_total", job="silences") >= 3, "failed polls")
    assert fake.services[SERVICE].replicas == 1 and not fake.updates, "a freeze may be in place: not raised"
