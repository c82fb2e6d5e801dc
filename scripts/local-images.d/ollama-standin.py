#!/usr/bin/python3
"""Stand-in for the `ollama` binary in scripts/local-images' Ollama image.

`ollama serve` listens on OLLAMA_HOST (default 127.0.0.1:11434) and answers what the stack
and Traefik ask a real Ollama: GET/HEAD /, /api/version, /api/tags. It runs no model.
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "0.0.0-standin"
ROUTES = {
    "/": ("text/plain; charset=utf-8", b"Ollama is running"),
    "/api/version": ("application/json", json.dumps({"version": VERSION}).encode()),
    "/api/tags": ("application/json", json.dumps({"models": []}).encode()),
}


class Handler(BaseHTTPRequestHandler):
    def _answer(self, with_body: bool) -> None:
        route = ROUTES.get(self.path.split("?", 1)[0])
        if route is None:
            self.send_error(404)
            return
        content_type, body = route
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve() -> int:
    host, _, port = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434").rpartition(":")
    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
    print(f"ollama stand-in {VERSION} listening on {host}:{port}", flush=True)
    server.serve_forever()
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        return serve()
    if argv[:1] in (["-v"], ["--version"]):
        print(f"ollama version is {VERSION}")
        return 0
    print("usage: ollama serve | ollama --version (stand-in)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
