"""The l2t_client package (sync and async) against a live loopback server with the real model. The
clients decode strictly here: a field the server sends that the client's types lack fails the test."""

from __future__ import annotations

import asyncio

import pytest
from l2t_client import AsyncL2TClient, CompletionChunk, L2TClient, L2TError

QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]


def test_sync_client(live_url):
    with L2TClient(live_url, timeout_s=300, strict=True) as client:
        assert client.health()
        result = client.generate("What is 2 + 2?", n=2, max_tokens=12, seed=1, return_candidates=True)
        assert result.chosen.episodes and result.candidates is not None and len(result.candidates) == 2
        assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
        episode = result.chosen.episodes[0]
        assert episode.token_end > episode.token_start >= 0 and result.samples_drawn == 2
        scored = client.score("What is 2 + 2?", ["2 + 2 = 4.\n\nThe answer is 4."], reference="4")
        assert scored.candidates[0].answer == "4" and scored.candidates[0].target == "4"
        with pytest.raises(L2TError) as error:
            client.generate("What is 2 + 2?", n=0)
        assert error.value.status == 422 and error.value.type == "invalid_request_error"


def test_async_client(live_url):
    async def run() -> list[str | None]:
        async with AsyncL2TClient(live_url, timeout_s=300, strict=True) as client:
            assert await client.health()
            results = await asyncio.gather(
                *(
                    client.generate(messages=[{"role": "user", "content": f"What is {i} + 1?"}], n=1, max_tokens=8)
                    for i in range(3)
                )
            )
            return [r.id for r in results]

    ids = asyncio.run(run())
    assert len(set(ids)) == 3


def test_chat_streams_tokens_then_scores_then_usage(live_url):
    """n=1: tokens as sampled; the L2T scores come on the finishing chunk, the usage last."""
    with L2TClient(live_url, timeout_s=300, strict=True) as client:
        stream = client.stream_chat_completion(
            QUESTION, max_tokens=8, seed=3, temperature=0, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        whole = client.chat_completion(QUESTION, max_tokens=8, seed=3, temperature=0)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishing = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(chunks) >= 3 and text == whole.choices[0].message.content
    assert len(finishing) == 1 and finishing[0].l2t is not None and finishing[0].l2t.episodes
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_reranked_chat_stream_carries_logprobs_and_scores(live_url):
    """n=2 reranked: the finished result is streamed, each choice with its log-probs and scores."""
    with L2TClient(live_url, timeout_s=300, strict=True) as client:
        chunks = list(
            client.stream_chat_completion(QUESTION, n=2, max_tokens=6, seed=1, logprobs=True, l2t_strategy="best_of_n")
        )
    texts = [c.choices[0] for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) == 2 and all(t.l2t is not None and t.logprobs is not None for t in texts)
    assert texts[0].l2t is not None and texts[1].l2t is not None and texts[0].l2t.score >= texts[1].l2t.score


def test_async_completion_stream(live_url):
    async def run() -> list[CompletionChunk]:
        async with AsyncL2TClient(live_url, timeout_s=300, strict=True) as client:
            stream = await client.stream_completion("2 + 2 =", max_tokens=6, seed=2)
            async with stream:
                return [c async for c in stream]

    chunks = asyncio.run(run())
    assert "".join(c.choices[0].text for c in chunks if c.choices) and chunks[-1].choices[0].finish_reason
