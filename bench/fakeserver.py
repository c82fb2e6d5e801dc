"""The receiver's app on the in-memory swarm of the tests (devkit/fakes.py), as its own process.

Everything is production's (``create_app``, the configuration, the token, logging one JSON line
per decision to stdout) except the Docker adapter, which answers from memory: the difference
between this and the real process is what Docker costs. Every configured service runs one
replica and carries a last-scale-up label of now, so its scale-ups meet their cooldown.

``python -m bench.fakeserver --config FILE --listen HOST:PORT``; ``FakeReceiverProcess`` runs it.
"""

from __future__ import annotations

import argparse
import collections
import logging
import subprocess
import sys
import time

from devkit.receiverproc import ReceiverProcess
from devkit.waiting import wait_for
from receiver.state import STATE_LABELS, encode_time

from .common import ROOT


class FakeReceiverProcess(ReceiverProcess):
    """``ReceiverProcess`` (config, token, port, metrics, stop) running this module instead."""

    def start(self, wait_ready: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fakeserver", "--config", str(self.config_path), "--listen", f"127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        wait_for(self._ready, 30, "the fake-swarm receiver to start")


def main() -> int:
    from aiohttp import web

    from devkit.fakes import FakeService, FakeSwarm
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
    web.run_app(create_app(config, swarm, token=token), host=host, port=port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
