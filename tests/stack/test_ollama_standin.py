"""The Ollama stand-in of scripts/local-images behaves like Ollama where scaling sees it:
slots and a queue, 503 beyond OLLAMA_MAX_QUEUE, a model load on first use and after keep_alive,
CPU per token on its own process, and a graceful stop. Run as a local process on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devkit.llm import MODEL, Generation, ollama_request
from devkit.procs import free_port

from .deployment import wait_for

STANDIN = Path(__file__).resolve().parents[2] / "scripts" / "local-images.d" / "ollama-standin.py"


@pytest.fixture
def standin() -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], int]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, str(STANDIN), "serve"],
            env={**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        started.append(process)

        def answers() -> bool:
            try:
                return ollama_request(port, "GET", "/api/version", timeout=1)[0] == 200
            except OSError:
                return False

        wait_for(answers, 10, "the stand-in to answer", 0.05)
        return process, port

    yield start
    for process in started:
        process.kill()
        process.wait()


def generate(port: int, tokens: int, **extra: object) -> dict:
    status, body = ollama_request(port, "POST", "/api/generate", {
        "model": MODEL, "prompt": "x", "stream": False, "options": {"num_predict": tokens}, **extra})
    assert status == 200, body
    return json.loads(body)


def test_requests_beyond_the_slots_wait_in_the_queue_and_beyond_the_queue_get_503(standin):
    _, port = standin(OLLAMA_NUM_PARALLEL="1", OLLAMA_MAX_QUEUE="1", OLLAMA_STANDIN_LOAD_SECONDS="0",
                      OLLAMA_STANDIN_TOKEN_CPU_MS="1", OLLAMA_STANDIN_TOKENS_PER_SECOND="20")
    served = Generation(port, 40)  # 2 s
    wait_for(lambda: served.started, 10, "the first stream to start", 0.02)
    queued = Generation(port, 5)
    time.sleep(0.3)
    status, body = ollama_request(port, "POST", "/api/generate", {"model": MODEL, "prompt": "x"})
    assert status == 503 and "maximum pending requests exceeded" in json.loads(body)["error"]
    assert not queued.started
    wait_for(lambda: served.done and queued.done, 20, "both streams to end", 0.05)
    assert served.complete() and queued.complete()
    assert queued.chunks[0] >= served.chunks[-1]


def test_a_model_loads_on_first_use_and_again_once_its_keep_alive_expires(standin):
    _, port = standin(OLLAMA_STANDIN_LOAD_SECONDS="0.5", OLLAMA_STANDIN_TOKEN_CPU_MS="1")
    assert json.loads(ollama_request(port, "GET", "/api/ps")[1])["models"] == []
    assert generate(port, 2, keep_alive="1s")["load_duration"] >= 0.5e9
    assert generate(port, 2, keep_alive="1s")["load_duration"] == 0
    loaded = json.loads(ollama_request(port, "GET", "/api/ps")[1])["models"]
    assert [m["name"] for m in loaded] == [MODEL] and loaded[0]["expires_at"]
    time.sleep(1.3)
    assert json.loads(ollama_request(port, "GET", "/api/ps")[1])["models"] == []
    assert generate(port, 2)["load_duration"] >= 0.5e9


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_every_generated_token_costs_the_process_real_cpu(standin):
    process, port = standin(OLLAMA_STANDIN_LOAD_SECONDS="0", OLLAMA_STANDIN_TOKEN_CPU_MS="20")
    before = process_cpu_seconds(process.pid)
    assert generate(port, 50)["eval_count"] == 50
    used = process_cpu_seconds(process.pid) - before
    assert used >= 50 * 0.020 * 0.95, used


def test_on_sigterm_it_refuses_new_connections_and_finishes_the_stream_in_flight(standin):
    process, port = standin(OLLAMA_STANDIN_LOAD_SECONDS="0", OLLAMA_STANDIN_TOKEN_CPU_MS="1",
                            OLLAMA_STANDIN_TOKENS_PER_SECOND="20")
    stream = Generation(port, 40)  # 2 s
    wait_for(lambda: stream.started, 10, "the stream to start", 0.02)
    process.send_signal(signal.SIGTERM)

    def refused() -> bool:
        try:
            ollama_request(port, "GET", "/api/version", timeout=1)
            return False
        except OSError:
            return True

    wait_for(refused, 5, "new connections to be refused", 0.05)
    assert not stream.done
    assert process.wait(timeout=30) == 0
    assert stream.complete(), (stream.status, stream.error, stream.final)
