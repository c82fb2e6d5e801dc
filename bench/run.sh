#!/usr/bin/env bash
# Every benchmark in one run (docs/benchmarks.md): sets up what it needs (scripts/setup.sh), adds the
# bench extra (matplotlib) to .venv, then runs `python -m bench`, which prints the tables, saves
# bench/results/latest.{json,md}, draws docs/bench-*.png and updates the results in docs/benchmarks.md.
# About 10 minutes on 2 cores. Run it on a quiet machine. Arguments go to `python -m bench`:
#   bash bench/run.sh --quick                 a smoke run (a minute; touches nothing in docs/)
#   bash bench/run.sh --only latency,loop     a subset (latency, throughput, growth, loop)
#   bash bench/run.sh --help
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
if ! .venv/bin/python -c "import matplotlib" 2>/dev/null; then
    echo "[bench] installing the bench extra into .venv"
    if grep -Eq '^bench *= *\[' pyproject.toml; then
        .venv/bin/pip install -q -e ".[bench]"
    else
        .venv/bin/pip install -q "matplotlib>=3.7"
    fi
fi
exec .venv/bin/python -m bench "$@"
