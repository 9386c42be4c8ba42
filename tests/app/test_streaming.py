"""`stream: true` with one candidate (or strategy `first`) sends tokens as they are generated; the
L2T scores, finish reasons and usage follow once scoring is done."""

from __future__ import annotations

import json
import time

import httpx
from openai import OpenAI


def events(live_url: str, path: str, body: dict) -> list[tuple[float, dict | str]]:
    """(seconds since the request, payload) of every SSE event."""
    started = time.monotonic()
    out: list[tuple[float, dict | str]] = []
    with httpx.stream("POST", f"{live_url}{path}", json=body, timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                out.append((time.monotonic() - started, data if data == "[DONE]" else json.loads(data)))
    return out


def test_tokens_arrive_as_they_are_generated(live_url):
    body = {"prompt": "Count: 1, 2, 3,", "max_tokens": 16, "temperature": 0, "stream": True}
    got = events(live_url, "/v1/completions", body)
    texts = [e["choices"][0]["text"] for _, e in got[:-1] if isinstance(e, dict) and e["choices"][0]["text"]]
    assert len(texts) >= 4  # many pieces, not one finished text
    assert got[-1][1] == "[DONE]"
    first_text_at = next(t for t, e in got if isinstance(e, dict) and e["choices"][0]["text"])
    assert first_text_at < got[-2][0]  # the first piece came before the end, not with it
    end = got[-2][1]
    assert isinstance(end, dict) and end["choices"][0]["finish_reason"] == "length" and "l2t" in end["choices"][0]
    whole = httpx.post(f"{live_url}/v1/completions", json={**body, "stream": False}, timeout=120).json()
    assert "".join(texts) == whole["choices"][0]["text"]  # greedy: the same text either way


def test_strategy_first_streams_every_candidate_with_the_sdk(live_url):
    client = OpenAI(base_url=f"{live_url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Name a colour."}],
        n=2,
        max_tokens=10,
        stream=True,
        stop=["\n"],
        extra_body={"l2t_strategy": "first"},
        stream_options={"include_usage": True},
    )
    text = {0: "", 1: ""}
    pieces = 0
    finish = {}
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            if choice.delta.content:
                text[choice.index] += choice.delta.content
                pieces += 1
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert set(finish) == {0, 1} and pieces > 2 and all("\n" not in t for t in text.values())
    assert usage is not None and usage.completion_tokens > 0


def test_a_bad_streamed_request_still_gets_its_status(live_url):
    body = {"prompt": "hi", "max_tokens": 4, "stream": True, "seed": 2**64}
    assert httpx.post(f"{live_url}/v1/completions", json=body, timeout=60).status_code == 400
