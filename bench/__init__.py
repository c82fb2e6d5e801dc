"""Benchmarks of the receiver next to the bare Docker API: ``bash bench/run.sh`` (docs/benchmarks.md).

Nothing here is imported by the receiver or asserted by the test suite; every figure is
printed, saved in ``bench/results/latest.json`` and plotted into ``docs/bench-*.png``.
"""
