# The autoscaler's webhook receiver (`autoscaler serve`).
#
#   docker build -t swarm-autoscaler:0.1.0 .
#
# Build arguments:
#   BASE_IMAGE  a Debian-like image with Python >= 3.11 and its venv module
#               (default: the official slim Python image).
#   PIP_CERT    optional: a CA bundle *inside the base image* for pip, when the package index
#               is reached through a TLS-inspecting proxy. Unset by default; only the build
#               stage sees it.
#   VERSION     the image's version label.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so a change to the code reuses this layer.
COPY pyproject.toml ./
RUN python3 -m venv /opt/venv \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt
COPY README.md ./
COPY receiver/ ./receiver/
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && /opt/venv/bin/python -OO -m compileall -q /opt/venv

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="swarm-autoscaler" \
      org.opencontainers.image.description="Alert-driven autoscaler for Docker Swarm services: the Alertmanager webhook receiver" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin autoscaler
COPY --from=build /opt/venv /opt/venv
# Under PYTHONOPTIMIZE=2 the interpreter reads .opt-2.pyc files, which the base image's standard
# library does not have and the unprivileged user cannot write: write them now for what the
# receiver, the gate, the doctor and the health check import (else each start compiles them).
RUN PYTHONDONTWRITEBYTECODE='' /opt/venv/bin/python -OO -c "import receiver.cli, receiver.app, receiver.gate.server, \
        receiver.doctor.run, receiver.ops, re2, urllib.request, asyncio.unix_events, ctypes"
# PYTHONOPTIMIZE=2 (python -OO): no docstrings kept in memory, 1.8 MB less resident (the
# receiver relies on neither docstrings nor assert statements); the venv is compiled for it above.
# PYDANTIC_DISABLE_PLUGINS: the receiver uses no pydantic plugin; without it pydantic reads every
# installed package's metadata looking for one when the first model is built (0.5 MB resident).
ENV PATH=/opt/venv/bin:$PATH \
    PYDANTIC_DISABLE_PLUGINS=__all__ \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONOPTIMIZE=2 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
# The receiver's own liveness endpoint; it never asks Docker. The port is the one the image
# serves by default (config `listen`); a stack that listens elsewhere overrides this check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/-/healthy', timeout=2)"]
ENTRYPOINT ["/opt/venv/bin/autoscaler", "serve"]
CMD ["--config", "/etc/autoscaler/config.yml"]
