"""The l2t_client package (sync and async) against a live loopback server."""

from __future__ import annotations

import asyncio

import pytest
from l2t_client import AsyncL2TClient, L2TClient, L2TError


def test_sync_client(live_url):
    with L2TClient(live_url, timeout_s=300) as client:
        assert client.health()
        result = client.generate("What is 2 + 2?", n=2, max_tokens=12, seed=1, return_candidates=True)
        assert result.chosen.episodes and result.candidates is not None and len(result.candidates) == 2
        assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
        scored = client.score("What is 2 + 2?", ["2 + 2 = 4.\n\nThe answer is 4."], reference="4")
        assert scored.candidates[0].answer == "4"
        with pytest.raises(L2TError) as error:
            client.generate("What is 2 + 2?", n=0)
        assert error.value.status == 422 and error.value.type == "invalid_request_error"


def test_async_client(live_url):
    async def run() -> list[str | None]:
        async with AsyncL2TClient(live_url, timeout_s=300) as client:
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
