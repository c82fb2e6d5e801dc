#!/usr/bin/env bash
# The main job: the whole loop on this machine (README "The demo"). Sets up what it needs
# (scripts/setup.sh), then runs the dev kit's demo (devkit/demo.py); extra arguments go to it (--keep, ...).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec .venv/bin/python -m devkit.demo "$@"
