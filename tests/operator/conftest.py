from ..swarm.conftest import docker_client, make_service  # noqa: F401 - the real-swarm fixtures
