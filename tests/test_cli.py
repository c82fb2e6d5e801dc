"""The command line: `autoscaler --help` and `autoscaler serve` import nothing from the dev kit."""

from __future__ import annotations

import subprocess
import sys

IMPORTS_OF = """
import sys
from receiver.cli import build_parser
build_parser()
from receiver import app, dockerapi, jobs  # what `autoscaler serve` imports
from receiver import backtest, doctor, ops  # and the operator commands
print(sorted(m for m in sys.modules if m == "devkit" or m.startswith(("devkit.", "tests.", "bench."))))
"""


def test_autoscaler_help_and_serve_import_nothing_from_the_dev_kit():
    result = subprocess.run([sys.executable, "-c", IMPORTS_OF], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_python_m_receiver_help_lists_the_product_commands_and_no_demo():
    result = subprocess.run([sys.executable, "-m", "receiver", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "check-config", "status", "freeze", "unfreeze", "backtest"):
        assert command in result.stdout
    assert "demo" not in result.stdout
