"""Soak: ten minutes of mixed good, bad and cancelled requests at twice the server's capacity.

Every request is answered exactly once (200, a 4xx or 503; a cancelled one is counted by the server
as cancelled), the server's request counter matches what was sent, /health stays 200 throughout and
the process's memory stays flat (RSS growth after warm-up under RSS_GROWTH_LIMIT_MB). L2T_SOAK_S
shortens it for a first check. Figures are printed and recorded in docs/benchmarks.md."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import LiveServer, make_app, metric

DURATION_S = float(os.environ.get("L2T_SOAK_S", "600"))
CAPACITY = 4  # L2T_MAX_QUEUE of the soaked server
CLIENTS = 2 * CAPACITY
RSS_GROWTH_LIMIT_MB = 150.0
JSON = {"content-type": "application/json"}
BACKOFF_S = 0.25

# (kind, path, body, client timeout): bodies are bytes so that bad ones can be malformed.
REQUESTS = [
    ("good", "/generate", b'{"prompt": "What is 6 + 7?", "n": 2, "max_tokens": 12}', 120.0),
    ("good", "/score", b'{"question": "What is 2 + 2?", "completions": ["2 + 2 = 4.", ""]}', 120.0),
    ("good", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}', 120.0),
    ("bad", "/generate", b'{"prompt": "\\ud800 x"}', 120.0),
    ("bad", "/generate", b'{"prompt": "hi", "seed": 1180591620717411303424}', 120.0),
    ("bad", "/v1/completions", b'{"prompt": "hi", "n": true}', 120.0),
    ("bad", "/score", b'{"question": "q", "completions": [', 120.0),
    ("cancelled", "/generate", b'{"prompt": "Tell a long story.", "n": 2, "max_tokens": 16}', 0.3),
]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.slow
def test_soak(loaded_model):
    app = make_app(loaded_model, max_queue=CAPACITY, max_n=2, max_tokens_limit=16)
    with LiveServer(app) as server:
        before = metric(httpx.get(f"{server.url}/metrics").text, "l2t_requests_total") + 1  # this scrape
        figures = asyncio.run(_soak(server.url))
        after = metric(httpx.get(f"{server.url}/metrics").text, "l2t_requests_total")
    print(f"soak figures: {figures}")
    statuses: Counter[str] = figures["statuses"]
    assert figures["answers_per_request"] == {1}  # every request answered exactly once (or cancelled by us)
    unexpected = {s for s in statuses if s not in ("200", "503", "cancelled") and not s.startswith("4")}
    assert not unexpected, statuses
    assert statuses["200"] > 0 and statuses["cancelled"] > 0
    assert after - before == figures["sent"] + figures["health_checks"]  # the server saw exactly what was sent
    assert figures["health_failures"] == 0
    assert figures["rss_growth_mb"] < RSS_GROWTH_LIMIT_MB


async def _soak(url: str) -> dict:
    statuses: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    health = Counter()
    stop_at = time.monotonic() + DURATION_S
    warm_at = time.monotonic() + min(60.0, DURATION_S / 3)
    rss: dict[str, float] = {}
    ids = itertools.count()

    async def client(worker: int) -> None:
        async with httpx.AsyncClient(timeout=120) as http:
            for kind, path, body, timeout in itertools.cycle(REQUESTS[worker % len(REQUESTS) :] + REQUESTS):
                if time.monotonic() > stop_at:
                    return
                request_id = f"soak-{next(ids)}"
                headers = {**JSON, "X-Request-Id": request_id}
                try:
                    response = await http.post(f"{url}{path}", content=body, headers=headers, timeout=timeout)
                except httpx.TimeoutException:
                    assert kind == "cancelled", f"{kind} {path} timed out"
                    statuses["cancelled"] += 1
                    answers[request_id] += 1
                    continue
                assert response.headers["x-request-id"] == request_id
                statuses[str(response.status_code)] += 1
                answers[request_id] += 1
                if kind == "bad":
                    assert 400 <= response.status_code < 500, response.text
                if response.status_code == 503:
                    await asyncio.sleep(BACKOFF_S)  # a client backs off, though sooner than Retry-After asks

    async def watch_health() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            while time.monotonic() < stop_at:
                health["checks"] += 1
                if (await http.get(f"{url}/health")).status_code != 200:
                    health["failures"] += 1
                if "warm" not in rss and time.monotonic() > warm_at:
                    rss["warm"] = rss_mb()
                await asyncio.sleep(1.0)

    started = time.monotonic()
    await asyncio.gather(watch_health(), *(client(i) for i in range(CLIENTS)))
    await asyncio.sleep(2.0)  # cancelled work winds down
    return {
        "duration_s": round(time.monotonic() - started, 1),
        "sent": sum(answers.values()),
        "statuses": statuses,
        "answers_per_request": set(answers.values()),
        "health_checks": health["checks"],
        "health_failures": health["failures"],
        "rss_warm_mb": round(rss.get("warm", rss_mb()), 1),
        "rss_growth_mb": round(rss_mb() - rss.get("warm", rss_mb()), 1),
    }
