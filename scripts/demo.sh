#!/usr/bin/env bash
# The main job: the whole loop on this machine (README "The demo"). Sets up what it needs
# (scripts/setup.sh), then runs `autoscaler demo`; extra arguments go to it (--keep, ...).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec .venv/bin/autoscaler demo "$@"
