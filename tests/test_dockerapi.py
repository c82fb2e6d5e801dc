"""The receiver's Engine API client (``dockerapi.Engine``) against a scripted HTTP server: one kept
connection, replaced once when the other side closed it; the engine's error answers become the
``SwarmError`` the scaler handles. What the real engine answers is proven in tests/swarm."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from receiver.asyncengine import AsyncEngine
from receiver.dockerapi import Engine, Target
from receiver.domain import DockerUnavailable, ServiceNotFound, ServiceSnapshot, SwarmError, UpdateConflict

SERVICE = {"ID": "abc", "Version": {"Index": 7}, "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 1}}}}


class Script:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.connections = 0
        self.close_after_answer = False  # as a proxy whose idle timeout ran out
        self.chunked = False  # as the engine sends a longer answer
        self.answers: dict[tuple[str, str], tuple[int, object]] = {}


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            script.connections += 1
            super().setup()

        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.partition("?")[0]
            script.requests.append((self.command, self.path, body))
            status, answer = (200, {"ApiVersion": "1.41"}) if path == "/version" else \
                script.answers.get((self.command, path), (404, {"message": "no such thing"}))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if script.chunked and path != "/version":
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in (data[:5], data[5:]):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            if script.close_after_answer and path != "/version":
                self.close_connection = True

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[Script, str]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield script, f"tcp://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_calls_share_one_kept_connection_under_the_engines_api_version(server):
    script, url = server
    script.answers[("GET", "/v1.41/services/web")] = (200, SERVICE)
    engine = Engine(url, 5)
    for _ in range(3):
        assert engine.inspect_service("web")["ID"] == "abc"
    engine.close()
    assert script.connections == 1
    assert [r[1] for r in script.requests] == ["/version"] + ["/v1.41/services/web"] * 3


def test_a_kept_connection_the_other_side_closed_is_replaced_once(server):
    script, url = server
    script.answers[("GET", "/v1.41/services/web")] = (200, SERVICE)
    script.close_after_answer = True
    engine = Engine(url, 5)
    engine.inspect_service("web")
    engine.inspect_service("web")  # the kept connection is gone: a new one, no error
    engine.close()
    assert script.connections == 2


def test_an_update_sends_the_spec_with_the_version_it_was_read_at(server):
    script, url = server
    script.answers[("POST", "/v1.41/services/abc/update")] = (200, {"Warnings": None})
    engine = Engine(url, 5)
    engine.update_service("abc", 7, SERVICE["Spec"])
    engine.close()
    method, path, body = script.requests[-1]
    assert (method, path, json.loads(body)) == ("POST", "/v1.41/services/abc/update?version=7", SERVICE["Spec"])


def test_the_engines_error_answers_become_the_errors_the_scaler_handles(server):
    script, url = server
    script.answers[("POST", "/v1.41/services/abc/update")] = (
        500, {"message": "rpc error: code = Unknown desc = update out of sequence"})
    script.answers[("POST", "/v1.41/configs/create")] = (409, {"message": "config already exists"})
    script.answers[("GET", "/v1.41/info")] = (503, {"message": "This node is not a swarm manager."})
    engine = Engine(url, 5)
    with pytest.raises(ServiceNotFound) as missing:
        engine.inspect_service("gone")
    assert missing.value.status == 404 and "no such thing" in str(missing.value)
    with pytest.raises(UpdateConflict):
        engine.update_service("abc", 6, SERVICE["Spec"])
    with pytest.raises(SwarmError) as exists:
        engine.create_config("c", b"{}", {})
    assert exists.value.status == 409 and not exists.value.transient
    with pytest.raises(SwarmError) as unavailable:
        engine.info()
    assert unavailable.value.status == 503 and unavailable.value.transient
    engine.close()


def test_nothing_listening_is_docker_unavailable(tmp_path):
    engine = Engine(f"unix://{tmp_path}/none.sock", 1)
    with pytest.raises(DockerUnavailable):
        engine.info()


def test_only_the_socket_and_plain_tcp_are_understood():
    with pytest.raises(DockerUnavailable, match="no TLS"):
        Engine("https://docker.example:2376", 1)


SNAPSHOT = ServiceSnapshot(id="abc", name="web", version=7, mode="replicated", replicas=1, running=1,
                           pending_since=None, labels={}, spec=SERVICE["Spec"])
TASKS = [{"DesiredState": "running", "Status": {"State": "running"}, "CreatedAt": "2026-12-01T00:00:00Z"},
         {"DesiredState": "running", "Status": {"State": "starting"}, "CreatedAt": "2026-12-01T00:00:10Z"}]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_the_answer_path_from_the_loop_reads_and_updates_on_one_kept_connection(server, chunked):
    script, url = server
    script.chunked = chunked
    script.answers[("POST", "/v1.41/services/abc/update")] = (200, {"Warnings": None})
    script.answers[("GET", "/v1.41/tasks")] = (200, TASKS)
    engine = AsyncEngine(Target.of(url))
    try:
        listed = await engine.call("GET", "/tasks", {"filters": '{"service": ["abc"]}'})
        await engine.set_replicas(SNAPSHOT, 2, {"swarm-autoscaler.last-scale-up": "2026-12-01T00:00:11Z"})
    finally:
        engine.close()
    assert listed == TASKS
    method, path, body = script.requests[-1]
    assert (method, path) == ("POST", "/v1.41/services/abc/update?version=7")
    assert json.loads(body) == {**SERVICE["Spec"], "Mode": {"Replicated": {"Replicas": 2}},
                                "Labels": {"swarm-autoscaler.last-scale-up": "2026-12-01T00:00:11Z"}}
    assert script.connections == 1


async def test_the_answer_path_replaces_a_closed_connection_once_and_reports_the_engines_refusals(server):
    script, url = server
    script.close_after_answer = True
    script.answers[("GET", "/v1.41/tasks")] = (200, TASKS)
    script.answers[("POST", "/v1.41/services/abc/update")] = (
        500, {"message": "rpc error: code = Unknown desc = update out of sequence"})
    engine = AsyncEngine(Target.of(url))
    try:
        await engine.call("GET", "/tasks")
        with pytest.raises(UpdateConflict):  # on a new connection: the kept one was closed
            await engine.set_replicas(SNAPSHOT, 2, {})
    finally:
        engine.close()
    assert script.connections == 2


async def _events_server(answer: bytes) -> tuple[asyncio.Server, str]:
    """Answers /version, then ``answer`` (status, headers and body as raw bytes) to the events request."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readuntil(b"\r\n\r\n"):
                if not request.startswith(b"GET /version"):
                    writer.write(answer)
                    await writer.drain()
                    return
                body = b'{"ApiVersion": "1.41"}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except asyncio.IncompleteReadError:
            pass  # the client closed its kept connection
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"


EVENT_A = {"Type": "service", "Action": "update", "Actor": {"Attributes": {"name": "web"}}}
EVENT_B = {"Type": "service", "Action": "remove", "Actor": {"Attributes": {"name": "db"}}}


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "until-close"])
async def test_the_event_stream_yields_each_event_whole_however_the_body_is_cut(chunked):
    lines = (json.dumps(EVENT_A) + "\n" + json.dumps(EVENT_B) + "\n").encode()
    if chunked:  # an event cut across two chunks, and two ends of events in one
        parts = [lines[:10], lines[10:-5], lines[-5:]]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    else:
        body, head = lines, b"HTTP/1.1 200 OK\r\n\r\n"
    server, url = await _events_server(head + body)
    engine = AsyncEngine(Target.of(url))
    try:
        stream = await engine.events({"type": ["service"]})
        seen = [event async for event in stream]  # ends with the body
    finally:
        engine.close()
        server.close()
    assert seen == [EVENT_A, EVENT_B]


async def test_the_event_stream_reports_a_refusal_and_a_cut():
    refusal = json.dumps({"message": "the gate passes service events only"}).encode()
    server, url = await _events_server(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n%s" % (len(refusal), refusal))
    engine = AsyncEngine(Target.of(url))
    try:
        with pytest.raises(SwarmError, match="service events only") as refused:
            await engine.events({"type": ["container"]})
        assert refused.value.status == 403
    finally:
        engine.close()
        server.close()
    cut = json.dumps(EVENT_A).encode()
    server, url = await _events_server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s" % (len(cut) + 9, cut))
    engine = AsyncEngine(Target.of(url))
    try:
        stream = await engine.events({"type": ["service"]})
        with pytest.raises(DockerUnavailable, match="event stream broke"):
            [event async for event in stream]  # the chunk never completes: the connection closed mid-way
    finally:
        engine.close()
        server.close()


def test_task_counts_give_the_running_the_oldest_on_its_way_and_when_the_newest_started_running():
    from receiver.swarmspec import task_counts
    from receiver.timeutil import parse_rfc3339

    def task(id_: str, desired: str, state: str, created: str, at: str | None = None) -> dict:
        return {"ID": id_, "DesiredState": desired, "CreatedAt": created,
                "Status": {"State": state, **({"Timestamp": at} if at else {})}}

    tasks = [task("a", "running", "running", "2026-12-01T00:00:00Z", "2026-12-01T00:00:05.5Z"),
             task("b", "running", "running", "2026-12-01T00:00:50Z", "2026-12-01T00:01:00.25Z"),
             task("c", "ready", "ready", "2026-12-01T00:01:58Z", "2026-12-01T00:02:00Z"),
             task("d", "running", "starting", "2026-12-01T00:01:30Z")]
    assert task_counts(tasks) == (2, parse_rfc3339("2026-12-01T00:01:30Z"), (parse_rfc3339("2026-12-01T00:01:00.25Z"), "b"))
    assert task_counts(tasks[2:]) == (0, parse_rfc3339("2026-12-01T00:01:30Z"), None)
