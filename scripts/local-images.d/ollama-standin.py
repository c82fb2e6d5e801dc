#!/usr/bin/python3
"""Stand-in for the `ollama` binary in scripts/local-images' Ollama image (stdlib only).

NOT Ollama: it runs no model. It behaves like `ollama serve` where scaling can see it:

- the API paths a client, Traefik and the stack's health check use: GET/HEAD /, /api/version,
  /api/tags (the models of OLLAMA_STANDIN_MODELS), /api/ps (loaded models with expires_at),
  POST /api/generate and /api/chat, streaming NDJSON chunks (or one answer with
  "stream": false), with Ollama's final fields (done_reason, load_duration, eval_count, ...);
  an empty prompt (or no messages) only loads the model, as Ollama's preload does, and takes
  no slot (the stack's health check asks so while every slot is busy);
- OLLAMA_NUM_PARALLEL requests served at once per model, the others wait in a queue;
  more than OLLAMA_MAX_QUEUE waiting requests are answered 503;
- a model load of OLLAMA_STANDIN_LOAD_SECONDS on first use and after its keep_alive
  (request field, else OLLAMA_KEEP_ALIVE, default 5m) expires;
- real CPU per generated token (OLLAMA_STANDIN_TOKEN_CPU_MS of this thread's CPU time,
  hashed with hashlib, which releases the GIL, so parallel slots use parallel cores): the
  container's cgroup CPU follows demand, and a CPU limit slows tokens down as it would a model;
- on SIGTERM it stops taking requests and finishes the ones it serves before exiting.

Tokens per answer: the request's options.num_predict, else OLLAMA_STANDIN_TOKENS (64).
OLLAMA_STANDIN_TOKENS_PER_SECOND (unset: as fast as the CPU allows) caps each stream's pace,
as a GPU's decoding speed does: long generations with little CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "0.9.3-standin"
WORDS = "the quick brown fox jumps over the lazy dog and keeps running through the field".split()
_CHUNK = os.urandom(64 * 1024)
_DURATION = re.compile(r"(-?\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class Busy(Exception):
    """More requests wait than OLLAMA_MAX_QUEUE allows."""


def parse_keep_alive(value: object, default: float) -> float:
    """Seconds a model stays loaded after its last request; negative means forever."""
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"time: invalid duration {text!r}") from None
        return sum(float(n) * _UNIT[u] for n, u in parts)


def burn_cpu(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU time."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        hashlib.sha256(_CHUNK).digest()


def now_rfc3339(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class Model:
    """One model's slots, queue and loaded state."""

    def __init__(self, name: str, parallel: int, load_seconds: float):
        self.name = name
        self.load_seconds = load_seconds
        self.slots = threading.Semaphore(parallel)
        self.lock = threading.Lock()
        self.load_lock = threading.Lock()
        self.active = 0
        self.expires_at: float | None = None  # None: not loaded; inf: never expires

    def loaded(self, now: float) -> bool:
        with self.lock:
            return self.expires_at is not None and (self.active > 0 or now < self.expires_at)

    def start(self) -> float:
        """Counts a request in; loads the model unless it is loaded. Returns the seconds spent loading."""
        with self.lock:
            if self.active == 0 and self.expires_at is not None and time.time() >= self.expires_at:
                self.expires_at = None  # its keep_alive ran out: unloaded
            self.active += 1
        with self.load_lock:  # a request that comes during a load waits for it
            with self.lock:
                if self.expires_at is not None:
                    return 0.0
            start = time.monotonic()
            time.sleep(self.load_seconds)
            with self.lock:
                self.expires_at = float("inf")
            return time.monotonic() - start

    def release(self, keep_alive: float) -> None:
        with self.lock:
            self.active -= 1
            if self.active == 0:
                self.expires_at = float("inf") if keep_alive < 0 else time.time() + keep_alive


class Server:
    """The scheduler: OLLAMA_NUM_PARALLEL slots per model and one queue of waiting requests."""

    def __init__(self, env: dict[str, str]):
        names = [m.strip() for m in env.get("OLLAMA_STANDIN_MODELS", env.get("OLLAMA_MODEL", "llama3.2:1b")).split(",")]
        self.parallel = int(env.get("OLLAMA_NUM_PARALLEL") or 4)
        self.max_queue = int(env.get("OLLAMA_MAX_QUEUE") or 512)
        self.keep_alive = parse_keep_alive(env.get("OLLAMA_KEEP_ALIVE"), 300.0)
        self.token_cpu = float(env.get("OLLAMA_STANDIN_TOKEN_CPU_MS", "20")) / 1000
        self.tokens = int(env.get("OLLAMA_STANDIN_TOKENS", "64"))
        rate = float(env.get("OLLAMA_STANDIN_TOKENS_PER_SECOND", "0"))
        self.token_seconds = 1 / rate if rate > 0 else 0.0  # at least this long per token, per stream
        load = float(env.get("OLLAMA_STANDIN_LOAD_SECONDS", "3"))
        self.models = {full_name(n): Model(full_name(n), self.parallel, load) for n in names if n}
        self.lock = threading.Lock()
        self.waiting = 0
        self.stopping = threading.Event()

    def model(self, name: str) -> Model | None:
        return self.models.get(full_name(name)) if name else None

    def acquire(self, model: Model) -> None:
        """Takes a slot of ``model``, waiting in the queue; Busy when the queue is full."""
        if model.slots.acquire(blocking=False):
            return
        with self.lock:
            if self.waiting >= self.max_queue:
                raise Busy
            self.waiting += 1
        try:
            model.slots.acquire()
        finally:
            with self.lock:
                self.waiting -= 1

    def done(self, model: Model, keep_alive: float) -> None:
        model.release(keep_alive)
        model.slots.release()


def full_name(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def model_entry(model: Model) -> dict[str, object]:
    return {
        "name": model.name, "model": model.name, "modified_at": "2026-12-01T00:00:00Z",
        "size": 1_300_000_000, "digest": hashlib.sha256(model.name.encode()).hexdigest(),
        "details": {"format": "gguf", "family": "standin", "parameter_size": "1B", "quantization_level": "Q4_K_M"},
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection is closed after this (and so is shutdown's wait)
    server_version = "ollama-standin"
    api: Server

    # -- plumbing ---------------------------------------------------------------------------------

    def _send(self, status: int, body: object, content_type: str = "application/json", head: bool = False) -> None:
        data = body if isinstance(body, bytes) else (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if self.api.stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _chunk(self, obj: object) -> None:
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _body(self) -> dict[str, object]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        body = json.loads(raw or b"{}")
        if not isinstance(body, dict):
            raise ValueError("request body must be a JSON object")
        return body

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    # -- routes -----------------------------------------------------------------------------------

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self._get(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._get(head=False)

    def _get(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(200, b"Ollama is running", "text/plain; charset=utf-8", head)
        elif path == "/api/version":
            self._send(200, {"version": VERSION}, head=head)
        elif path == "/api/tags":
            self._send(200, {"models": [model_entry(m) for m in self.api.models.values()]}, head=head)
        elif path == "/api/ps":
            now = time.time()
            loaded = [
                {**model_entry(m), "size_vram": 0,
                 "expires_at": "2318-08-31T00:00:00Z" if m.expires_at == float("inf") else now_rfc3339(m.expires_at)}
                for m in self.api.models.values() if m.loaded(now)
            ]
            self._send(200, {"models": loaded}, head=head)
        else:
            self._send(404, b"404 page not found", "text/plain; charset=utf-8", head)

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path not in ("/api/generate", "/api/chat"):
            self._send(404, b"404 page not found", "text/plain; charset=utf-8")
            return
        try:
            body = self._body()
            keep_alive = parse_keep_alive(body.get("keep_alive"), self.api.keep_alive)
        except ValueError as err:
            self._send(400, {"error": str(err)})
            return
        name = str(body.get("model") or "")
        model = self.api.model(name)
        if model is None:
            self._send(404 if name else 400, {"error": f'model "{name}" not found, try pulling it first' if name else "model is required"})
            return
        chat = path == "/api/chat"
        if not (body.get("messages") if chat else body.get("prompt")):
            # Ollama's preload: load the model (waiting for a load under way), take no slot.
            self._preload(chat, model, keep_alive)
            return
        try:
            self.api.acquire(model)
        except Busy:
            self._send(503, {"error": "server busy, please try again.  maximum pending requests exceeded"})
            return
        try:
            self._generate(chat, body, model, keep_alive)
        finally:
            self.api.done(model, keep_alive)

    def _preload(self, chat: bool, model: Model, keep_alive: float) -> None:
        started = time.monotonic()
        load = model.start()
        model.release(keep_alive)
        answer: dict[str, object] = {"model": model.name, "created_at": now_rfc3339()}
        if chat:
            answer["message"] = {"role": "assistant", "content": ""}
        else:
            answer["response"] = ""
        answer.update(done=True, done_reason="load", total_duration=int((time.monotonic() - started) * 1e9),
                      load_duration=int(load * 1e9))
        self._send(200, answer)

    def _generate(self, chat: bool, body: dict[str, object], model: Model, keep_alive: float) -> None:
        started = time.monotonic()
        load = model.start()
        prompt = body.get("messages") if chat else body.get("prompt")
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        tokens = int(options.get("num_predict") or self.api.tokens)  # type: ignore[union-attr]
        stream = body.get("stream", True) is not False

        def piece(text: str) -> dict[str, object]:
            out: dict[str, object] = {"model": model.name, "created_at": now_rfc3339()}
            if chat:
                out["message"] = {"role": "assistant", "content": text}
            else:
                out["response"] = text
            out["done"] = False
            return out

        if stream:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
        eval_start = time.monotonic()
        text = []
        for i in range(tokens):
            burn_cpu(self.api.token_cpu)
            if self.api.token_seconds:
                time.sleep(max(0.0, eval_start + (i + 1) * self.api.token_seconds - time.monotonic()))
            word = WORDS[i % len(WORDS)] + " "
            text.append(word)
            if stream:
                self._chunk(piece(word))
        final = piece("" if stream else "".join(text))
        final.update(
            done=True, done_reason="stop",
            total_duration=int((time.monotonic() - started) * 1e9), load_duration=int(load * 1e9),
            prompt_eval_count=len(str(prompt)) // 4 if prompt else 0, prompt_eval_duration=0,
            eval_count=tokens, eval_duration=int((time.monotonic() - eval_start) * 1e9),
        )
        if not chat:
            final["context"] = list(range(tokens))
        if not stream:
            self._send(200, final)
            return
        self._chunk(final)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        if self.api.stopping.is_set():
            self.close_connection = True


def serve(env: dict[str, str]) -> int:
    host, _, port = env.get("OLLAMA_HOST", "127.0.0.1:11434").rpartition(":")
    api = Server(env)
    handler = type("BoundHandler", (Handler,), {"api": api})
    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), handler)
    server.daemon_threads = False  # server_close() waits for the requests being served
    server.block_on_close = True

    def stop(signum: int, frame: object) -> None:
        api.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ollama stand-in {VERSION} listening on {host}:{port}; models {', '.join(api.models)}; "
          f"OLLAMA_NUM_PARALLEL={api.parallel} OLLAMA_MAX_QUEUE={api.max_queue}", flush=True)
    server.serve_forever()
    print("ollama stand-in: stopped taking requests; finishing the ones in flight", flush=True)
    server.server_close()
    print("ollama stand-in: done", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        return serve(dict(os.environ))
    if argv[:1] in (["-v"], ["--version"]):
        print(f"ollama version is {VERSION}")
        return 0
    print("usage: ollama serve | ollama --version (stand-in)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
