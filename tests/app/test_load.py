"""Concurrency, disconnects and overload against a live loopback server (bounded, self-stopping loops)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from tests.app.conftest import LiveServer, make_app, metric


def test_sixteen_concurrent_requests_are_each_answered_once(live_url):
    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, str, str]:
        response = await client.post(
            f"{live_url}/generate",
            json={"prompt": f"What is {i} + 1?", "n": 2, "max_tokens": 8},
            headers={"X-Request-Id": f"r{i}"},
        )
        return response.status_code, response.headers["x-request-id"], response.json()["id"]

    async def all_of_them() -> list[tuple[int, str, str]]:
        async with httpx.AsyncClient(timeout=300) as client:
            return await asyncio.gather(*(one(client, i) for i in range(16)))

    results = asyncio.run(all_of_them())
    assert [status for status, _, _ in results] == [200] * 16
    assert sorted(body_id for _, _, body_id in results) == sorted(f"r{i}" for i in range(16))
    assert all(header == body_id for _, header, body_id in results)


def test_client_disconnect_cancels_generation(live_url):
    before = metric(httpx.get(f"{live_url}/metrics").text, "l2t_requests_cancelled_total")
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{live_url}/generate",
            json={"prompt": "Write a long story.", "n": 4, "max_tokens": 2000, "temperature": 1.0},
            timeout=2.0,
        )
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(f"{live_url}/metrics").text
        if metric(text, "l2t_requests_cancelled_total") > before and metric(text, "l2t_queue_depth") == 0:
            break
        time.sleep(0.2)
    assert metric(text, "l2t_requests_cancelled_total") > before
    assert metric(text, "l2t_queue_depth") == 0  # the worker stopped: 4 × 2000 tokens would take minutes
    assert time.monotonic() - started < 30
    assert httpx.get(f"{live_url}/health").status_code == 200


def test_overload_gets_503_with_retry_after(loaded_model):
    with LiveServer(make_app(loaded_model, max_queue=1)) as server:
        slow: dict[str, int] = {}

        def occupy() -> None:
            body = {"prompt": "Count to fifty.", "n": 2, "max_tokens": 64, "temperature": 0}
            slow["status"] = httpx.post(f"{server.url}/generate", json=body, timeout=300).status_code

        worker = threading.Thread(target=occupy)
        worker.start()
        deadline = time.monotonic() + 10
        while metric(httpx.get(f"{server.url}/metrics").text, "l2t_queue_depth") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        rejected = httpx.post(f"{server.url}/score", json={"question": "q", "completions": ["a"]}, timeout=30)
        assert rejected.status_code == 503
        assert rejected.headers["retry-after"] == "2"
        assert rejected.json()["error"]["code"] == "queue_full"
        worker.join(timeout=300)
        assert slow["status"] == 200
        # the client package retries 503s (honouring Retry-After) and then succeeds
        from l2t_client import L2TClient

        with L2TClient(server.url, max_retries=3) as client:
            assert client.score("What is 1 + 1?", ["1 + 1 = 2"]).candidates[0].answer == "2"
