"""Abuse: the requests of the hardening table (each within every per-field limit) sent beside ordinary
ones. The ordinary ones must still be answered within 2× their idle latency, the abusive ones answered
with a 4xx (or served within their own bounds), and the server's memory back within 150 MB of its
baseline afterwards. Slow (about a minute on the 2-core machine): `python -m pytest -m slow
tests/app/test_abuse.py -s`; its figures are recorded in docs/benchmarks.md."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.conftest import LiveServer, make_app

RSS_LIMIT_MB = 150.0
LATENCY_FACTOR = 2.0
ORDINARY = {"prompt": "What is 6 + 7?", "n": 2, "max_tokens": 32, "seed": 1}
CJK_PROMPT = "漢字の問題" * 6_200  # 31,000 characters: 83,000 tokens
LONG_COMPLETION = "<episode_1>" + "12345 + 67890 = 80235. " * 1_300  # 30,000 characters: 24,000 tokens
ABUSIVE: list[tuple[str, str, dict[str, Any]]] = [
    ("one stop of 2,000 chars", "/v1/completions", {"prompt": "Hello", "max_tokens": 8, "stop": ["x" * 2000]}),
    ("four stops of 5,000 chars", "/v1/completions", {"prompt": "Hello", "max_tokens": 8, "stop": ["y" * 5000] * 4}),
    ("31,000 CJK characters", "/generate", {"prompt": CJK_PROMPT, "n": 2, "max_tokens": 32}),
    ("8 completions of 30,000 chars", "/score", {"question": "What is 1 + 1?", "completions": [LONG_COMPLETION] * 8}),
    (
        "json_object response format",
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "json_object"}},
    ),
    (
        "tools",
        "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        },
    ),
]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def _ordinary(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await client.post("/generate", json=ORDINARY)
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


async def _abusive(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> tuple[int, float]:
    started = time.perf_counter()
    response = await client.post(path, json=body)
    return response.status_code, time.perf_counter() - started


async def _run(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        await _ordinary(client)  # warm-up
        idle = statistics.median([await _ordinary(client) for _ in range(3)])
        gc.collect()
        baseline = rss_mb()
        abuse = asyncio.gather(*(_abusive(client, path, body) for _, path, body in ABUSIVE))
        beside = [await _ordinary(client) for _ in range(3)]
        answers = await abuse
        after_abuse = [await _ordinary(client) for _ in range(2)]  # the last row: after the abusive ones
        gc.collect()
        return {
            "idle_s": idle,
            "beside_s": beside,
            "after_s": after_abuse,
            "abusive": {name: answer for (name, _, _), answer in zip(ABUSIVE, answers, strict=True)},
            "rss_baseline_mb": baseline,
            "rss_after_mb": rss_mb(),
        }


@pytest.mark.slow
def test_abusive_requests_do_not_hold_the_server(loaded_model: Any) -> None:
    app = make_app(loaded_model)  # the default limits: what a new user runs
    with LiveServer(app) as server:
        figures = asyncio.run(_run(server.url))
    print(f"abuse figures: {figures}")
    for name, (status, seconds) in figures["abusive"].items():
        assert status < 500, f"{name}: {status}"
        assert status == 400 or seconds < 30, f"{name}: {status} after {seconds:.1f} s"
    bound = LATENCY_FACTOR * figures["idle_s"]
    slowest = max(figures["beside_s"] + figures["after_s"])
    assert slowest <= bound, (
        f"an ordinary request took {slowest:.2f} s beside the abusive ones (idle {bound / 2:.2f} s)"
    )
    growth = figures["rss_after_mb"] - figures["rss_baseline_mb"]
    assert growth <= RSS_LIMIT_MB, f"RSS grew by {growth:.0f} MB"
