"""Fixtures for the stack tests: the images (scripts/local-images) and a deployed stack.

``stack`` (module scope) is the whole stack.yml running on the local swarm under a unique
name, removed with everything it made when the module ends (see deployment.py). Use it from
another module as it is; each module gets its own deployment::

    def test_something(stack):
        stack.deploy()              # docker stack deploy again, same files and settings
        stack.wait_converged()
        code, out = stack.exec("autoscaler", ["/opt/venv/bin/python", "-c", "..."])
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from .deployment import (
    LOCAL_IMAGES,
    STACK_FILE,
    Stack,
    deployed_stack,
    resolved_stack,
    run,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder builds images or deploys the stack: the long part of the suite."""
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=60)
    swarm = client.info()["Swarm"]
    assert swarm["LocalNodeState"] == "active" and swarm["ControlAvailable"], \
        "the engine is not a swarm manager: run scripts/setup.sh"
    yield client
    client.close()


@pytest.fixture(scope="session")
def local_images() -> float:
    """Runs scripts/local-images (idempotent); returns how long it took."""
    start = time.monotonic()
    run("bash", LOCAL_IMAGES, timeout=1800)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, docker_client: docker.DockerClient, local_images: float) -> Iterator[Stack]:
    """A module sets ``LIVE_RULES = True`` to have Prometheus's rules select its stack's Ollama,
    and ``STACK_EDITS`` (deployment.StackEdits) to change the shipped files as an operator would."""
    with deployed_stack(docker_client, live_rules=getattr(request.module, "LIVE_RULES", False),
                        edits=getattr(request.module, "STACK_EDITS", None)) as deployed:
        yield deployed



@pytest.fixture(scope="session")
def resolved() -> dict[str, Any]:
    """stack.yml as Docker resolves it (``docker stack config``)."""
    return resolved_stack(STACK_FILE)
