"""The remote engine (`engine=openai`) against a loopback HTTP server that misbehaves on purpose: a hanging
`/v1/models`, 503/504 with a long Retry-After, completions that never answer or stall half-way.

What is checked is what keeps a slow remote from stalling the server: health never waits for the
remote, one deadline bounds a whole call, a POST that may have reached the model is not sent twice,
a cancel aborts the call in flight (and the remote sees its client go), and the request id arrives.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.runtime import Runtime
from app.main import create_app
from l2t_core.engines import Cancelled, EngineError, SamplingParams
from l2t_core.engines.openai_engine import OpenAIEngine
from l2t_core.request_context import REQUEST_ID

COMPLETION = {
    "choices": [{"index": 0, "text": "<episode>3 + 4 = 7.</episode> The answer is 7.", "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 12},
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer: wait `delay_s` (ending early if the client leaves), then answer `status`;
    `stall_s` sends the headers and half the body, then stalls that long; `drop` closes the connection
    without an answer (a remote that crashed while generating)."""

    status: int = 200
    delay_s: float = 0.0
    retry_after: str | None = None
    stall_s: float = 0.0
    drop: bool = False


@dataclass
class Remote:
    """What the fake remote answers and what it saw."""

    url: str = ""
    models_delay_s: float = 0.0
    card: dict[str, Any] = field(default_factory=lambda: {"id": "default", "object": "model"})  # on /v1/models
    completions: list[Reply] = field(default_factory=lambda: [Reply()])  # in order; the last one repeats
    hits: dict[str, int] = field(default_factory=dict)
    request_ids: list[str | None] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)  # the JSON of every completion request
    disconnects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_completion(self) -> Reply:
        with self.lock:
            served = self.hits.get("/v1/completions", 1) - 1
            return self.completions[min(served, len(self.completions) - 1)]

    def count(self, path: str, request_id: str | None = None) -> None:
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            if path == "/v1/completions":
                self.request_ids.append(request_id)


def make_handler(remote: Remote) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            remote.count(self.path)
            if self.path != "/v1/models":
                return self.answer(404, {"error": "not found"})
            if not self.wait(remote.models_delay_s):
                self.answer(200, {"object": "list", "data": [remote.card]})

        def do_POST(self) -> None:
            sent = self.rfile.read(int(self.headers.get("content-length", 0)))
            with remote.lock:
                remote.bodies.append(json.loads(sent))
            remote.count(self.path, self.headers.get("x-request-id"))
            reply = remote.next_completion()
            if self.wait(reply.delay_s):
                return
            if reply.drop:
                self.close_connection = True
                return self.connection.shutdown(socket.SHUT_RDWR)
            if reply.status != 200:
                headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
                return self.answer(reply.status, {"error": f"scripted {reply.status}"}, headers)
            if not reply.stall_s:
                return self.answer(200, COMPLETION)
            body = json.dumps(COMPLETION).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.wait(reply.stall_s)

        def answer(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def wait(self, seconds: float) -> bool:
            """Sleep `seconds`; True (and the disconnect counted) as soon as the client goes away."""
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                readable, _, _ = select.select([self.connection], [], [], 0.01)
                if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                    with remote.lock:
                        remote.disconnects += 1
                    self.close_connection = True
                    return True
            return False

    return Handler


@pytest.fixture()
def remote() -> Iterator[Remote]:
    state = Remote()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def engine_for(remote: Remote, **options: Any) -> OpenAIEngine:
    defaults: dict[str, Any] = {"health_interval_s": 0.05, "health_timeout_s": 0.2, "backoff_s": 0.01}
    return OpenAIEngine(remote.url, "default", **{**defaults, **options})


def test_health_is_answered_at_once_while_the_remote_hangs_and_follows_it(remote: Remote) -> None:
    remote.models_delay_s = 30.0
    engine = engine_for(remote)
    slowest = 0.0
    for _ in range(20):  # 0.5 s of asking while every probe hangs
        started = time.perf_counter()
        assert not engine.healthy()
        slowest = max(slowest, time.perf_counter() - started)
        time.sleep(0.025)
    assert slowest < 0.05
    remote.models_delay_s = 0.0
    deadline = time.monotonic() + 2.0
    while not engine.healthy() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.healthy()
    engine.close()
    probes = remote.hits["/v1/models"]
    time.sleep(0.3)
    assert remote.hits["/v1/models"] == probes  # the probe thread stopped with the engine


def test_penalties_and_the_logit_bias_reach_the_remote_in_openais_form(remote: Remote) -> None:
    engine = engine_for(remote)
    params = SamplingParams(presence_penalty=0.5, frequency_penalty=-1.25, logit_bias=((15, -100.0), (7, 2.5)))
    engine.generate([1, 2], params)
    engine.generate([1, 2], SamplingParams())
    engine.close()
    shaped, plain = remote.bodies
    assert shaped["presence_penalty"] == 0.5 and shaped["frequency_penalty"] == -1.25
    assert shaped["logit_bias"] == {"15": -100.0, "7": 2.5}  # string keys, as OpenAI takes them
    assert not {"presence_penalty", "frequency_penalty", "logit_bias"} & set(plain)  # neutral: left to the remote


def test_a_504_with_a_long_retry_after_fails_at_once_and_is_not_resent(remote: Remote) -> None:
    remote.completions = [Reply(504, retry_after="600")]
    engine = engine_for(remote, timeout_s=30)
    started = time.monotonic()
    with pytest.raises(EngineError, match="rejected the request: HTTP 504"):
        engine.generate([1, 2], SamplingParams())
    assert time.monotonic() - started < 1.0
    assert remote.hits["/v1/completions"] == 1
    engine.close()


def test_retry_after_is_capped(remote: Remote) -> None:
    remote.completions = [Reply(503, retry_after="600"), Reply()]
    engine = engine_for(remote, timeout_s=30, max_wait_s=0.3)
    started = time.monotonic()
    batch = engine.generate([1, 2], SamplingParams())
    assert 0.3 <= time.monotonic() - started < 1.5
    assert batch.generations[0].text.startswith("<episode>") and remote.hits["/v1/completions"] == 2
    engine.close()


def test_a_retry_that_would_end_past_the_deadline_is_not_waited_for(remote: Remote) -> None:
    remote.completions = [Reply(503, retry_after="600")]
    engine = engine_for(remote, timeout_s=1.0)  # the default cap, 5 s, is past the deadline
    started = time.monotonic()
    with pytest.raises(EngineError, match="past the request's 1s"):
        engine.generate([1, 2], SamplingParams())
    assert time.monotonic() - started < 0.5 and remote.hits["/v1/completions"] == 1
    engine.close()


def test_a_read_timeout_on_the_post_is_not_retried(remote: Remote) -> None:
    remote.completions = [Reply(delay_s=30.0)]
    engine = engine_for(remote, timeout_s=0.5, max_retries=3)
    started = time.monotonic()
    with pytest.raises(EngineError, match="no answer within 0.5s"):
        engine.generate([1, 2], SamplingParams())
    assert 0.5 <= time.monotonic() - started < 1.5
    assert remote.hits["/v1/completions"] == 1
    engine.close()


def test_a_connection_broken_after_the_post_is_not_retried(remote: Remote) -> None:
    remote.completions = [Reply(drop=True), Reply()]
    engine = engine_for(remote, timeout_s=30, max_retries=3)
    with pytest.raises(EngineError, match="connection broke during request .*not retried"):
        engine.generate([1, 2], SamplingParams())
    assert remote.hits["/v1/completions"] == 1
    engine.close()


def test_a_body_that_stalls_half_way_is_cut_at_the_deadline(remote: Remote) -> None:
    remote.completions = [Reply(stall_s=30.0)]
    engine = engine_for(remote, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(EngineError, match="no answer within 0.5s"):
        engine.generate([1, 2], SamplingParams())
    assert time.monotonic() - started < 1.5 and remote.hits["/v1/completions"] == 1
    engine.close()


def test_connection_failures_are_retried_within_the_deadline() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    engine = OpenAIEngine(url, "default", max_retries=2, backoff_s=0.01, health_interval_s=0.05)
    assert not engine.healthy()
    with pytest.raises(EngineError, match="after 3 attempts: connection failed"):
        engine.generate([1, 2], SamplingParams())
    engine.close()


@pytest.mark.parametrize("reply", [Reply(delay_s=30.0), Reply(stall_s=30.0)], ids=["no-answer", "stalled-body"])
def test_cancel_aborts_a_call_in_flight_and_the_remote_sees_it(remote: Remote, reply: Reply) -> None:
    remote.completions = [reply]
    engine = engine_for(remote, timeout_s=60)
    cancel = threading.Event()
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            engine.generate([1, 2], SamplingParams(), cancel)
        except Exception as exc:
            outcome["error"] = exc
        outcome["ended"] = time.monotonic()

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 2.0
    while remote.hits.get("/v1/completions", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the remote is now working on it
    cancelled_at = time.monotonic()
    cancel.set()
    worker.join(2.0)
    assert isinstance(outcome.get("error"), Cancelled)
    assert outcome["ended"] - cancelled_at < 0.5
    deadline = time.monotonic() + 1.0
    while remote.disconnects < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert remote.disconnects == 1 and remote.hits["/v1/completions"] == 1
    engine.close()


def test_the_request_id_reaches_the_remote(remote: Remote) -> None:
    engine = engine_for(remote)
    token = REQUEST_ID.set("req-from-the-client")
    try:
        engine.generate([1, 2], SamplingParams())
    finally:
        REQUEST_ID.reset(token)
    engine.generate([1, 2], SamplingParams())  # outside a server request the engine makes one up
    assert remote.request_ids[0] == "req-from-the-client"
    assert remote.request_ids[1] is not None and remote.request_ids[1].startswith("l2t-")
    engine.close()


def serving_through(remote: Remote, loaded_model: Any) -> Runtime:
    """A server runtime as `L2T_ENGINE=openai L2T_REMOTE_URL=<the fake remote> l2t serve` starts it."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("L2T_ENGINE", "openai")
        env.setenv("L2T_REMOTE_URL", remote.url)
        runtime = Runtime(Settings())
    runtime.start(loaded_model)
    return runtime


def test_the_server_forwards_its_request_id_and_answers_health_while_the_remote_hangs(
    remote: Remote, loaded_model: Any
) -> None:
    runtime = serving_through(remote, loaded_model)
    with TestClient(create_app(runtime=runtime)) as client:
        body = {"prompt": "What is 3 + 4?", "n": 1, "max_tokens": 32}
        response = client.post("/generate", json=body, headers={"X-Request-Id": "req-e2e-17"})
        assert response.status_code == 200, response.text
        body = {"model": "default", "prompt": "What is 3 + 4?", "max_tokens": 32, "stream": True}
        with client.stream("POST", "/v1/completions", json=body, headers={"X-Request-Id": "req-e2e-18"}) as stream:
            assert stream.status_code == 200 and "[DONE]" in stream.read().decode()
        assert remote.request_ids == ["req-e2e-17", "req-e2e-18"]
        remote.models_delay_s = 30.0
        started = time.perf_counter()
        client.get("/health")
        assert time.perf_counter() - started < 0.5
    runtime.close()


def test_the_remotes_context_comes_from_its_model_card(remote: Remote) -> None:
    """vLLM's OpenAI server states `max_model_len` on each model card; it is read once, as the engine starts."""
    remote.card = {"id": "default", "object": "model", "max_model_len": 1536}
    engine = engine_for(remote)
    assert engine.max_model_len == 1536
    remote.card = {"id": "default", "object": "model", "max_model_len": 99}
    assert engine.max_model_len == 1536  # not read again
    engine.close()
    for card in (
        {"id": "default", "object": "model"},  # a server that states none
        {"id": "another-model", "object": "model", "max_model_len": 1536},  # not the model we ask for
        {"id": "default", "object": "model", "max_model_len": "long"},
    ):
        remote.card = card
        engine = engine_for(remote)
        assert engine.max_model_len is None
        engine.close()


def test_a_remote_that_does_not_answer_at_start_has_no_context(remote: Remote) -> None:
    remote.models_delay_s = 30.0
    started = time.perf_counter()
    engine = engine_for(remote, health_timeout_s=0.2)
    assert engine.max_model_len is None and time.perf_counter() - started < 2.0
    engine.close()


def test_the_server_admits_by_the_remotes_context(remote: Remote, loaded_model: Any) -> None:
    """The remote's context (shorter than the scorer model's 8192) bounds a request before it is sent."""
    remote.card = {"id": "default", "object": "model", "max_model_len": 512}
    runtime = serving_through(remote, loaded_model)
    with TestClient(create_app(runtime=runtime)) as client:
        response = client.post("/generate", json={"prompt": "What is 3 + 4?", "n": 1, "max_tokens": 300})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "context_length_exceeded"
        assert "context is 512 tokens" in response.json()["error"]["message"]
        assert "/v1/completions" not in remote.hits  # refused here, never sent
        fitting = client.post("/generate", json={"prompt": "What is 3 + 4?", "n": 1, "max_tokens": 32})
        assert fitting.status_code == 200, fitting.text
    runtime.close()
