"""Waiting and ports for the dev kit, the tests and the benchmarks: the one home of each."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any


class WaitTimeout(AssertionError):
    """A condition did not hold in time (an AssertionError, so a test fails with the message)."""


def wait_for(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition", interval: float = 0.2) -> Any:
    """Polls until ``predicate()`` is truthy and returns that value; raises ``WaitTimeout`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
