"""Process helpers for tests: the same ones the harness and the demo use."""

from receiver.harness.procs import free_port
from receiver.harness.receiverproc import ReceiverProcess, metric_value, wait_for

__all__ = ["ReceiverProcess", "free_port", "metric_value", "wait_for"]
