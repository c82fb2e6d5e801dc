# Alertmanager (and amtool) from Debian's package, laid out like the official image.
# Built by scripts/local-images on a machine that reaches no container registry.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus-alertmanager busybox-static \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man \
 && ln -s /bin/busybox /usr/local/bin/wget \
 && ln -s /usr/bin/prometheus-alertmanager /bin/alertmanager \
 && mkdir -p /alertmanager /etc/alertmanager \
 && chown 65534:65534 /alertmanager
USER 65534:65534
WORKDIR /alertmanager
EXPOSE 9093
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
