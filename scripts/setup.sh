#!/usr/bin/env bash
# Idempotent setup of everything the demo and the test suite need, on Debian 12 as root:
# Debian packages, a running dockerd in swarm mode, the local stand-in image and the
# project's virtualenv (.venv) with its test extra. Safe to run again: each step checks first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STANDIN_IMAGE="${STANDIN_IMAGE:-autoscaler-standin:1}"
PACKAGES=(docker.io busybox-static prometheus prometheus-alertmanager iproute2 python3 python3-venv curl)

log() { printf '[setup] %s\n' "$*"; }

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    # The Debian packages start nothing here (no systemd), but stop any service they did start:
    # the tests run their own Prometheus and Alertmanager on ports they choose.
}

start_dockerd() {
    if docker info >/dev/null 2>&1; then return; fi
    log "starting dockerd"
    mkdir -p /var/log
    nohup dockerd >/var/log/autoscaler-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    log "dockerd did not come up; last log lines:"; tail -20 /var/log/autoscaler-dockerd.log; exit 1
}

init_swarm() {
    local state
    state="$(docker info --format '{{.Swarm.LocalNodeState}}')"
    if [ "$state" != "active" ]; then
        log "initialising a one-node swarm (was: $state)"
        docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    fi
}

build_standin_image() {
    if docker image inspect "$STANDIN_IMAGE" >/dev/null 2>&1; then return; fi
    log "building the stand-in image $STANDIN_IMAGE from busybox-static"
    local dir; dir="$(mktemp -d)"
    mkdir -p "$dir/bin" "$dir/tmp" "$dir/www"
    cp /bin/busybox "$dir/bin/busybox"
    for applet in sh sleep httpd wget echo cat nc hostname; do ln -s busybox "$dir/bin/$applet"; done
    tar -C "$dir" -c . | docker import -c 'CMD ["/bin/sleep","3600"]' - "$STANDIN_IMAGE" >/dev/null
    rm -rf "$dir"
}

make_venv() {
    local venv="$ROOT/.venv" stamp
    stamp="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.installed" 2>/dev/null)" = "$stamp" ]; then return; fi
    log "creating the virtualenv $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -e "$ROOT[test]"
    echo "$stamp" >"$venv/.installed"
}

install_packages
start_dockerd
init_swarm
build_standin_image
make_venv
log "ready: docker $(docker version --format '{{.Server.Version}}'), swarm $(docker info --format '{{.Swarm.LocalNodeState}}'), image $STANDIN_IMAGE, venv $ROOT/.venv"
