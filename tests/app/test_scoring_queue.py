"""Cross-request scoring over HTTP on the real model: concurrent /score requests share one scorer call
(counted in /metrics) and score as they do alone. Cancellation and error isolation in the queue are
tested on the pipeline (tests/scoring/test_micro_batch.py): the HTTP edge refuses the settings a scorer
would refuse (a 'reference' target without a reference) before they reach it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from l2t_core.scoring import L2TScorer
from tests.app.conftest import LiveServer, make_app, metric

COMPLETIONS = ["<episode_1>2 + 3 = 5</episode_1>\nThe final answer is \\boxed{5}.", "It is 5."]


def test_concurrent_requests_share_one_scorer_call_and_score_as_alone(loaded_model):
    bodies = [
        {"question": f"What is 2 + {i}?", "completions": COMPLETIONS, "prompt_format": "plain"} for i in (3, 4, 5)
    ]
    app = make_app(loaded_model, scoring_window_ms=60_000, scoring_max_jobs=3)  # closes when all 3 arrived

    async def post_all(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=300) as client:
            return list(await asyncio.gather(*(client.post(f"{url}/score", json=b) for b in bodies)))

    with LiveServer(app) as server:
        responses = asyncio.run(post_all(server.url))
        assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
        text = httpx.get(f"{server.url}/metrics").text
        assert metric(text, "l2t_scoring_batch_jobs_count") == 1
        assert metric(text, "l2t_scoring_batch_jobs_sum") == 3
    scorer = L2TScorer(loaded_model.model, loaded_model.tokenizer)
    for body, response in zip(bodies, responses, strict=True):
        prompt = app.state.runtime.pipeline.prompt(body["question"], prompt_format="plain")
        alone = scorer.score(prompt.text, COMPLETIONS)
        for together, by_itself in zip(response.json()["candidates"], alone, strict=True):
            assert together["score"] == pytest.approx(by_itself.score, rel=1e-4, abs=1e-6)
            rewards = [e["reward"] for e in together["episodes"]]
            assert rewards == pytest.approx([e.reward for e in by_itself.episodes], rel=1e-4, abs=1e-6)
