"""The receiver's app on the in-memory swarm of the tests (devkit/fakes.py), as its own process.

Everything is production's (``create_app``, the configuration, the token, logging one JSON line
per decision to stdout) except the Docker adapter, which answers from memory, and the watched
copy, which is that memory: decisions read it without a Docker call or a thread hop, as the real
receiver reads its copy. The difference between this and the real process is what Docker costs. Every configured service runs one
replica and carries a last-scale-up label of now, so its scale-ups meet their cooldown.

``python -m bench.fakeserver --config FILE --listen HOST:PORT``; ``FakeReceiverProcess`` runs it.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from devkit.fakes import FakeSwarm
from devkit.receiverproc import IMAGE_ENV, ReceiverProcess
from devkit.waiting import wait_for
from receiver.domain import ServiceNotFound, ServiceSnapshot
from receiver.state import STATE_LABELS, encode_time
from receiver.watch import ABSENT, Absent

from .common import ROOT


class FakeReceiverProcess(ReceiverProcess):
    """``ReceiverProcess`` (config, token, port, metrics, stop) running this module instead."""

    def start(self, wait_ready: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fakeserver", "--config", str(self.config_path), "--listen", f"127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **IMAGE_ENV},
        )
        wait_for(self._ready, 30, "the fake-swarm receiver to start")


class MemoryCopy:
    """``SwarmCopy``'s reading side over the in-memory swarm: always live, always current."""

    live = True

    def __init__(self, swarm: FakeSwarm):
        self._swarm = swarm
        self.on_live: Callable[[bool], Any] = lambda live: None

    def get(self, name: str) -> ServiceSnapshot | Absent:
        try:
            return self._swarm.inspect(name)
        except ServiceNotFound:
            return ABSENT

    def writing(self, name: str) -> None:
        pass  # the memory is the swarm: never stale

    def written(self, name: str, service_id: str, version: int) -> None:
        pass

    def start(self) -> None:
        self.on_live(True)

    async def stop(self) -> None:
        pass


def main() -> int:
    from aiohttp import web

    from devkit.fakes import FakeService
    from receiver.app import create_app
    from receiver.config import load_config, parse_listen, read_token

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--listen", required=True)
    args = parser.parse_args()
    config = load_config(args.config).model_copy(update={"listen": args.listen})
    token = read_token(config)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    now = encode_time(time.time())
    swarm = FakeSwarm(*(FakeService(name, replicas=1, labels={STATE_LABELS["up"]: now}) for name in config.services))
    swarm.calls = collections.deque(maxlen=1000)  # the tests keep every call; a benchmark must not grow
    host, port = parse_listen(config.listen)
    app = create_app(config, swarm, token=token, copy=MemoryCopy(swarm))  # type: ignore[arg-type]  # duck-typed copy
    web.run_app(app, host=host, port=port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
