#!/usr/bin/env bash
# The whole test suite: sets up what it needs (scripts/setup.sh), then runs pytest.
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec .venv/bin/python -m pytest -q -rfEs "$@"
