from ..stack.conftest import local_images  # noqa: F401 - the stack's images (Ollama stand-in, Traefik)
from ..swarm.conftest import docker_client, make_service  # noqa: F401 - the real-swarm fixtures
