# A stand-in for the cAdvisor image (none can be pulled here): /usr/bin/cadvisor
# (cadvisor-standin.py) reads each running container's cgroup CPU and memory on its node and
# exports them under cAdvisor's metric and label names. busybox wget for the stack's health
# check, as in the real (Alpine-based) image.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox-static \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man \
 && ln -s /bin/busybox /usr/local/bin/wget
COPY cadvisor-standin.py /usr/bin/cadvisor
EXPOSE 8080
ENTRYPOINT ["/usr/bin/cadvisor"]
