"""Removing a deployed stack leaves only its images (a module of its own: it takes its deployment away)."""

from __future__ import annotations

import json

import pytest

from .deployment import Stack


@pytest.mark.swarm
def test_removing_the_stack_leaves_only_the_images(stack: Stack, resolved):
    images = {s["image"] for s in resolved["services"].values()}
    stack.remove()
    namespace = {"label": f"com.docker.stack.namespace={stack.name}"}
    client = stack.client
    for kind in ("services", "networks", "configs", "volumes"):
        assert getattr(client, kind).list(filters=namespace) == [], kind
    assert client.api.containers(all=True, filters=namespace) == []
    assert not [s for s in client.secrets.list() if s.name == stack.secret_name]
    assert not [c for c in client.configs.list() if stack.name in c.name
                or stack.name in json.dumps(c.attrs["Spec"].get("Labels", {}))]
    for image in images:
        client.images.get(image)
