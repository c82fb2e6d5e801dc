#!/usr/bin/env bash
# The whole test suite: sets up what it needs (scripts/setup.sh), then
#   1. lint (ruff) and types (mypy), as configured in pyproject.toml;
#   2. the fast tests: no swarm, loop, multi-node or stack (seconds to a few minutes);
#   3. the long tests: the real swarm, Prometheus, Alertmanager, the stack, several nodes.
# This is the README's test command; .ci/run calls exactly this.
#   bash scripts/test.sh            everything, in that order, stopping at the first step that fails
#   bash scripts/test.sh --fast     steps 1 and 2 only
#   bash scripts/test.sh ARGS...    pytest ARGS (after setup), e.g. tests/test_policy.py or -m multinode
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
LONG="swarm or loop or multinode or stack"
if [ $# -gt 0 ] && [ "$1" != "--fast" ]; then
    exec .venv/bin/python -m pytest -q -rfEs "$@"
fi
echo "[test] lint: ruff"
.venv/bin/ruff check .
echo "[test] types: mypy"
.venv/bin/mypy
echo "[test] fast tests"
.venv/bin/python -m pytest -q -rfEs -m "not ($LONG)"
if [ "${1:-}" = "--fast" ]; then exit 0; fi
echo "[test] long tests"
exec .venv/bin/python -m pytest -q -rfEs -m "$LONG"
