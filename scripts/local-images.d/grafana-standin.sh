#!/bin/sh
# Stand-in for Grafana in scripts/local-images (busybox only): answers the health path the
# stack checks (/api/health on :3000) once the provisioned files the stack ships are in place,
# so a missing Swarm config shows as an unhealthy task. Dashboards are not rendered.
set -e
for f in /etc/grafana/provisioning/datasources/prometheus.yml \
         /etc/grafana/provisioning/dashboards/autoscaler.yml \
         /var/lib/grafana/dashboards/autoscaler.json; do
    [ -s "$f" ] || { echo "grafana stand-in: $f is missing" >&2; exit 1; }
done
mkdir -p /tmp/grafana/api
echo '{"database": "ok", "version": "0.0.0-standin"}' >/tmp/grafana/api/health
echo "grafana stand-in listening on :3000"
exec httpd -f -p 3000 -h /tmp/grafana
