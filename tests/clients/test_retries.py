"""Retries against a real loopback server: which statuses and failures are tried again, how long the
client waits (the server's Retry-After, capped), and that the number of attempts is bounded."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest
from l2t_client import AsyncL2TClient, L2TClient, L2TConnectionError, L2TError, ScoreResponse

from app.schemas import TimingsOut, UsageOut
from app.score.protocol import ScoreResponse as ServerScoreResponse
from tests.clients.conftest import Answer, ScriptedServer, error

# A /score answer as the server's own model writes it.
SCORED = ServerScoreResponse(
    id="score-1",
    model="m",
    scorer_model="m",
    prompt_format=None,
    candidates=[],
    usage=UsageOut(prompt_tokens=3, completion_tokens=0, scoring_tokens=5, total_tokens=3),
    timings=TimingsOut(generate_ms=0.0, score_ms=1.5),
).model_dump(mode="json")
FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05}


def score(url: str, **client: Any) -> ScoreResponse:
    with L2TClient(url, **{**FAST, **client}) as c:
        return c.score("q", ["a"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_busy_and_rate_limited_are_retried_after_their_retry_after(scripted: ScriptedServer) -> None:
    scripted.script = [
        error(503, "busy", "queue_full", **{"Retry-After": "1"}),
        error(429, "slow down", **{"retry-after-ms": "300"}),
        Answer(200, SCORED),
    ]
    started = time.monotonic()
    result = score(scripted.url)
    waited = time.monotonic() - started
    assert result.id == "score-1" and result.usage.scoring_tokens == 5
    assert scripted.hits == 3 and scripted.paths == ["/score"] * 3
    assert 1.3 <= waited < 3.0  # the server's 1 s + 0.3 s, not the 0.01 s backoff


@pytest.mark.parametrize("status", [502, 504, 408])
def test_transient_statuses_are_retried_with_backoff(scripted: ScriptedServer, status: int) -> None:
    scripted.script = [error(status, "transient"), Answer(200, SCORED)]
    assert score(scripted.url).id == "score-1"
    assert scripted.hits == 2


@pytest.mark.parametrize("status", [400, 422, 404, 413, 500])
def test_client_errors_and_internal_errors_are_not_retried(scripted: ScriptedServer, status: int) -> None:
    scripted.script = [error(status, "no", "bad_input"), Answer(200, SCORED)]
    with pytest.raises(L2TError) as raised:
        score(scripted.url)
    assert scripted.hits == 1
    assert (raised.value.status, raised.value.message, raised.value.code) == (status, "no", "bad_input")


def test_the_server_can_forbid_or_ask_for_a_retry(scripted: ScriptedServer) -> None:
    scripted.script = [error(503, "not this one", **{"x-should-retry": "false"}), Answer(200, SCORED)]
    with pytest.raises(L2TError):
        score(scripted.url)
    assert scripted.hits == 1
    scripted.script = [error(500, "try again", **{"x-should-retry": "true"}), Answer(200, SCORED)]
    scripted.hits = 0
    assert score(scripted.url).id == "score-1" and scripted.hits == 2


def test_attempts_are_bounded(scripted: ScriptedServer) -> None:
    scripted.script = [error(503, "still loading", "not_ready", **{"Retry-After": "0"})]
    with pytest.raises(L2TError) as raised:
        score(scripted.url, max_retries=2)
    assert scripted.hits == 3
    assert (raised.value.status, raised.value.code) == (503, "not_ready")


def test_no_retries_when_max_retries_is_zero(scripted: ScriptedServer) -> None:
    scripted.script = [error(503, "busy"), Answer(200, SCORED)]
    with pytest.raises(L2TError):
        score(scripted.url, max_retries=0)
    assert scripted.hits == 1


def test_a_retry_after_over_the_cap_fails_at_once(scripted: ScriptedServer) -> None:
    scripted.script = [error(503, "come back later", **{"Retry-After": "30"}), Answer(200, SCORED)]
    started = time.monotonic()
    with pytest.raises(L2TError) as raised:
        score(scripted.url, max_retry_after_s=5)
    assert scripted.hits == 1 and raised.value.status == 503
    assert time.monotonic() - started < 2


def test_an_answer_that_is_not_the_envelope_still_raises_with_its_text(scripted: ScriptedServer) -> None:
    scripted.script = [Answer(418, "<html>teapot</html>")]
    with pytest.raises(L2TError) as raised:
        score(scripted.url)
    assert raised.value.status == 418 and "teapot" in raised.value.message


def test_connection_refused_is_retried_then_fails_cleanly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(L2TConnectionError) as raised:
        score(url, max_retries=2)
    assert raised.value.status is None
    assert "after 3 attempts" in str(raised.value) and "ConnectError" in str(raised.value)
    assert time.monotonic() - started < 5
    with L2TClient(url) as client:
        assert client.health() is False  # unreachable is not healthy, and not an exception


def test_a_server_that_comes_up_during_the_retries_is_reached() -> None:
    """Connection refused while the server restarts, then its answer: the request gets through."""
    port = free_port()
    servers: list[ScriptedServer] = []

    def come_up() -> None:
        server = ScriptedServer(port)
        server.script = [Answer(200, SCORED)]
        servers.append(server.__enter__())

    late = threading.Timer(0.3, come_up)
    late.start()
    try:
        result = score(f"http://127.0.0.1:{port}", max_retries=6, backoff_s=0.1, max_backoff_s=0.4)
        assert result.id == "score-1" and servers[0].hits == 1
    finally:
        late.join()
        for server in servers:
            server.__exit__()


def test_async_client_retries_the_same_way(scripted: ScriptedServer) -> None:
    scripted.script = [error(429, "slow down", **{"Retry-After": "0.2"}), Answer(200, SCORED)]

    async def run() -> str:
        async with AsyncL2TClient(scripted.url, **FAST) as client:
            return (await client.score("q", ["a"])).id

    assert asyncio.run(run()) == "score-1" and scripted.hits == 2

    async def refused() -> None:
        async with AsyncL2TClient(f"http://127.0.0.1:{free_port()}", max_retries=1, **FAST) as client:
            await client.score("q", ["a"])

    with pytest.raises(L2TConnectionError, match="after 2 attempts"):
        asyncio.run(refused())
