# Prometheus from Debian's package, laid out like the official image (entrypoint, user,
# /prometheus, busybox wget for the stack's health check, promtool on the PATH).
# Built by scripts/local-images on a machine that reaches no container registry.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus busybox-static \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man \
 && ln -s /bin/busybox /usr/local/bin/wget \
 && mkdir -p /prometheus /etc/prometheus \
 && chown 65534:65534 /prometheus
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
