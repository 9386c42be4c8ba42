"""Server-sent events read into typed chunks over real HTTP: `[DONE]` ends the stream, a stream cut
short raises, a refusal before the stream starts is retried like any other call."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from l2t_client import AsyncL2TClient, ChatCompletionChunk, L2TClient, L2TError

from tests.clients.conftest import Answer, ScriptedServer, error

BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(index: int, content: str | None, finish_reason: str | None = None) -> dict[str, Any]:
    delta = {"role": "assistant", "content": content} if content is not None else {}
    return {**BASE, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}


def sse(*events: dict[str, Any] | str) -> Answer:
    body = "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)
    return Answer(200, body, {"content-type": "text/event-stream"})


STREAM = sse(
    chunk(0, "2 + 2"),
    chunk(0, " = 4"),
    chunk(0, None, "stop"),
    {
        **BASE,
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "scoring_tokens": 9},
    },
    "[DONE]",
)


def test_a_stream_is_typed_chunks_until_done(scripted: ScriptedServer) -> None:
    scripted.script = [STREAM]
    with L2TClient(scripted.url) as client, client.stream_chat_completion([{"role": "user", "content": "q"}]) as s:
        chunks = list(s)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks) and len(chunks) == 4
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "2 + 2 = 4"
    assert chunks[2].choices[0].finish_reason == "stop"
    assert chunks[3].usage is not None and chunks[3].usage.scoring_tokens == 9


def test_a_refusal_before_the_stream_is_retried(scripted: ScriptedServer) -> None:
    scripted.script = [error(503, "busy", "queue_full", **{"Retry-After": "0"}), STREAM]
    with L2TClient(scripted.url, backoff_s=0.01) as client:
        chunks = list(client.stream_chat_completion([{"role": "user", "content": "q"}]))
    assert scripted.hits == 2 and len(chunks) == 4


def test_a_stream_cut_short_raises_after_its_chunks(scripted: ScriptedServer) -> None:
    scripted.script = [sse(chunk(0, "2 + 2"))]
    seen = []
    with L2TClient(scripted.url) as client, pytest.raises(L2TError) as raised:
        for c in client.stream_chat_completion([{"role": "user", "content": "q"}]):
            seen.append(c)
    assert len(seen) == 1 and raised.value.code == "incomplete_stream"
    assert scripted.hits == 1  # a started stream is never tried again


def test_an_error_status_on_a_stream_request_raises_its_envelope(scripted: ScriptedServer) -> None:
    scripted.script = [error(400, "'n' must be >= 1", "invalid_value")]
    with L2TClient(scripted.url) as client, pytest.raises(L2TError) as raised:
        client.stream_chat_completion([{"role": "user", "content": "q"}], n=0)
    assert (raised.value.status, raised.value.code) == (400, "invalid_value") and scripted.hits == 1


def test_async_stream(scripted: ScriptedServer) -> None:
    scripted.script = [STREAM]

    async def run() -> list[ChatCompletionChunk]:
        async with AsyncL2TClient(scripted.url) as client:
            stream = await client.stream_chat_completion([{"role": "user", "content": "q"}])
            async with stream:
                return [c async for c in stream]

    chunks = asyncio.run(run())
    assert len(chunks) == 4 and chunks[1].choices[0].delta.content == " = 4"
