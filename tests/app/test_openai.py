"""The official openai SDK works unchanged against the OpenAI-compatible routes (live loopback server)."""

from __future__ import annotations

import json

import httpx
from openai import OpenAI

from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, prompt_format

MESSAGES = [{"role": "user", "content": "What is 4 + 5?"}]


def sdk(live_url: str) -> OpenAI:
    return OpenAI(base_url=f"{live_url}/v1", api_key="unused", max_retries=0)


def test_chat_completions(live_url):
    response = sdk(live_url).chat.completions.create(
        model="default", messages=MESSAGES, n=3, max_tokens=16, seed=5, extra_body={"l2t_strategy": "best_of_n"}
    )
    assert response.object == "chat.completion" and len(response.choices) == 3
    scores = [c.model_extra["l2t"]["score"] for c in response.choices]
    assert scores == sorted(scores, reverse=True)  # best first under best_of_n
    for choice in response.choices:  # the served prompt format's prefill starts the reply
        assert choice.message.content.startswith(prompt_format(DEFAULT_PROMPT_FORMAT).prefill)
        assert isinstance(choice.model_extra["l2t"]["tagged"], bool)
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert {c.model_extra["l2t"]["candidate_index"] for c in response.choices} == {0, 1, 2}
    assert response.usage.completion_tokens == sum(c.model_extra["l2t"]["completion_tokens"] for c in response.choices)
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_chat_streaming_with_usage(live_url):
    stream = sdk(live_url).chat.completions.create(
        model="default",
        messages=MESSAGES,
        n=2,
        max_tokens=12,
        seed=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = {0: "", 1: ""}
    finish = {}
    for chunk in chunks:
        for choice in chunk.choices:
            text[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert set(finish) == {0, 1} and all(text.values())
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_raw_stream_ends_with_done(live_url):
    body = {"prompt": "2 + 2 =", "max_tokens": 4, "n": 1, "stream": True}
    with httpx.stream("POST", f"{live_url}/v1/completions", json=body, timeout=120) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][len("data: ") :])["object"] == "text_completion"


def test_completions(live_url):
    response = sdk(live_url).completions.create(
        model="default", prompt="The sum of 2 and 3 is", max_tokens=8, n=2, stop=["\n"]
    )
    assert len(response.choices) == 2
    assert all("\n" not in c.text for c in response.choices)


def test_chat_prompt_format_extension(live_url):
    plain = sdk(live_url).chat.completions.create(
        model="default", messages=MESSAGES, n=1, max_tokens=8, seed=5, extra_body={"l2t_prompt_format": "plain"}
    )
    short = sdk(live_url).chat.completions.create(
        model="default", messages=MESSAGES, n=1, max_tokens=8, seed=5, extra_body={"l2t_prompt_format": "short"}
    )
    assert short.choices[0].message.content.startswith("<episode_1>")
    assert plain.usage.prompt_tokens < short.usage.prompt_tokens  # no system prompt in `plain`


def test_search_settings_extension(live_url):
    extra = {"l2t_strategy": "beam_prune", "l2t_beam": {"episode_tokens": 12, "max_episodes": 2, "value": "pool"}}
    beam = sdk(live_url).chat.completions.create(
        model="default", messages=MESSAGES, n=2, max_tokens=24, extra_body=extra
    )
    assert beam.choices and all(c.finish_reason in ("stop", "exit", "forced") for c in beam.choices)
    assert beam.usage.completion_tokens <= 2 * 24  # the search's budget: n × max_tokens, probes included
    # every sample is "confident" at a threshold of -100: the settings arrive if it stops after one
    adaptive = {"l2t_strategy": "adaptive", "l2t_adaptive": {"round_size": 1, "min_logprob": -100.0}}
    drawn = sdk(live_url).chat.completions.create(
        model="default", messages=MESSAGES, n=2, max_tokens=8, extra_body=adaptive
    )
    assert len(drawn.choices) == 1 and drawn.usage.completion_tokens <= 8
    wrong = {"model": "default", "messages": MESSAGES, "l2t_strategy": "majority", "l2t_beam": {"value": "pool"}}
    response = httpx.post(f"{live_url}/v1/chat/completions", json=wrong, timeout=60)
    assert response.status_code == 400 and "beam" in response.json()["error"]["message"]
    unknown = {"model": "default", "messages": MESSAGES, "l2t_strategy": "beam_prune", "l2t_beam": {"width": 3}}
    assert httpx.post(f"{live_url}/v1/chat/completions", json=unknown, timeout=60).status_code in (400, 422)
