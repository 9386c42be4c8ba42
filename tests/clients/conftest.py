"""A real loopback HTTP server that answers from a script (status, headers, body) and counts the
requests it got: what the client's retries, error handling and SSE parsing are tested against."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Answer:
    status: int
    body: str | dict[str, Any] = ""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode(), "application/json"
        return self.body.encode(), self.headers.get("content-type", "text/plain")


def error(status: int, message: str, code: str | None = None, **headers: str) -> Answer:
    """An answer in the server's error envelope."""
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
    return Answer(status, body, headers)


class ScriptedServer:
    """Answers each request with the next scripted answer (the last one repeats); `hits` counts them."""

    def __init__(self, port: int = 0) -> None:
        self.script: list[Answer] = []
        self.hits = 0
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                self.rfile.read(int(self.headers.get("content-length", 0)))
                server.hits += 1
                server.paths.append(self.path)
                answer = server.script[min(server.hits - 1, len(server.script) - 1)]
                body, content_type = answer.encoded()
                self.send_response(answer.status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="scripted-http", daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server
