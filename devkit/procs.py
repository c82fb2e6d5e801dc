"""Run a real Alertmanager or Prometheus on a free loopback port, for tests and demos.

Each process gets its own working directory (configuration, data, log), listens on
127.0.0.1 only, is ready (``GET /-/ready`` answers 200) when the start function returns,
and is terminated and reaped by :meth:`Running.stop` or on leaving a ``with`` block.
Alertmanager runs without clustering (``--cluster.listen-address=``). A binary that is
missing raises ``FileNotFoundError``: the caller's test fails, it never skips.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import yaml

from .waiting import free_port

ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
PROMETHEUS_BINARIES = ("prometheus",)
_START_ATTEMPTS = 3


@dataclass
class Running:
    """A started server process: where it listens, and how to stop it."""

    name: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: IO[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process (kill it after ``timeout`` seconds) and reap it. Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log_file.closed:
            self._log_file.close()

    def __enter__(self) -> Running:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def find_binary(candidates: Sequence[str]) -> str:
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(f"none of {', '.join(candidates)} is on PATH (scripts/setup.sh installs them)")


def _is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _start(name: str, workdir: Path, command: Callable[[int], list[str]], timeout: float) -> Running:
    """Start ``command(port)`` on a free port and wait until it is ready; retry a lost port race."""
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = free_port()
        log_path = workdir / f"{name}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(command(port), stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir)
        running = Running(name, port, workdir, process, log_path, log_file)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if _is_ready(running.url):
                return running
            time.sleep(0.05)
        running.stop()
        log = running.log()
        if "address already in use" in log and attempt < _START_ATTEMPTS:
            continue
        state = f"exited with {process.returncode}" if process.returncode is not None else "was not ready"
        raise RuntimeError(f"{name} {state} within {timeout}s on port {port}; its log:\n{log}")
    raise AssertionError("unreachable")


def start_alertmanager(
    config_text: str,
    workdir: str | Path,
    *,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> Running:
    """Alertmanager with ``config_text``, its data in ``workdir``, on a free loopback port."""
    workdir = Path(workdir)
    binary = find_binary(ALERTMANAGER_BINARIES)
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(config_text, encoding="utf-8")
    storage = workdir / "alertmanager-data"
    storage.mkdir(exist_ok=True)

    def command(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            *extra_args,
        ]

    return _start("alertmanager", workdir, command, timeout)


def start_prometheus(
    config_text: str,
    rule_texts: Iterable[str],
    workdir: str | Path,
    *,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> Running:
    """Prometheus with ``config_text`` and the given rule files, on a free loopback port.

    The rule texts are written to ``workdir/rules/rules-N.yml`` and the configuration's
    ``rule_files`` is set to exactly those files.
    """
    workdir = Path(workdir)
    binary = find_binary(PROMETHEUS_BINARIES)
    rules_dir = workdir / "rules"
    rules_dir.mkdir(exist_ok=True)
    rule_paths = []
    for index, text in enumerate(rule_texts):
        path = rules_dir / f"rules-{index}.yml"
        path.write_text(text, encoding="utf-8")
        rule_paths.append(str(path))
    config = yaml.safe_load(config_text) or {}
    config["rule_files"] = rule_paths
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    storage = workdir / "prometheus-data"
    storage.mkdir(exist_ok=True)

    def command(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            *extra_args,
        ]

    return _start("prometheus", workdir, command, timeout)
