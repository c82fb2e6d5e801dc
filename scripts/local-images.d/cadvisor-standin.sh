#!/bin/sh
# Stand-in for the `cadvisor` binary in scripts/local-images' cAdvisor image (busybox only).
# Serves /healthz and a small /metrics on :8080, what the stack's health check and
# Prometheus ask of it. It measures nothing; its arguments are accepted and ignored.
mkdir -p /tmp/cadvisor
echo ok >/tmp/cadvisor/healthz
cat >/tmp/cadvisor/metrics <<METRICS
# HELP machine_cpu_cores Number of logical CPU cores.
# TYPE machine_cpu_cores gauge
machine_cpu_cores $(grep -c ^processor /proc/cpuinfo)
METRICS
echo "cadvisor stand-in listening on :8080"
exec httpd -f -p 8080 -h /tmp/cadvisor
