#!/bin/sh
# Stand-in for the `traefik` binary in scripts/local-images' Traefik image (busybox only).
# Serves what the stack checks of Traefik: /ping and /metrics on the internal entry point
# :8080, and answers the entry point :80 (404, as Traefik does with no matching router).
# `traefik healthcheck --ping` asks /ping like the real command. Other arguments (the
# stack's static configuration) are accepted and ignored.
case "$1" in
    healthcheck) exec wget -q -O /dev/null http://127.0.0.1:8080/ping ;;
    version|--version) echo "Version: 0.0.0-standin"; exit 0 ;;
esac
mkdir -p /tmp/traefik /tmp/web
echo OK >/tmp/traefik/ping
cat >/tmp/traefik/metrics <<'METRICS'
# HELP traefik_config_reloads_total Config reloads
# TYPE traefik_config_reloads_total counter
traefik_config_reloads_total 1
METRICS
httpd -p 80 -h /tmp/web
echo "traefik stand-in listening on :80 and :8080"
exec httpd -f -p 8080 -h /tmp/traefik
