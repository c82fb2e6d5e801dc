# haproxy from Debian's package, laid out like the official image: configuration at
# /usr/local/etc/haproxy/haproxy.cfg, an entrypoint that runs it in the foreground, bash for
# the stack's health check. Built by scripts/local-images on a machine without a registry.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man \
 && mkdir -p /usr/local/etc/haproxy
STOPSIGNAL SIGUSR1
ENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db"]
CMD ["-f", "/usr/local/etc/haproxy/haproxy.cfg"]
