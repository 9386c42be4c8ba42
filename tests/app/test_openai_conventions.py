"""What OpenAI-SDK users rely on (vLLM's server does the same): BadRequestError for bad input, text
parts and the developer role, a list of prompts, per-token log-probs."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI


def sdk(live_url: str) -> OpenAI:
    return OpenAI(base_url=f"{live_url}/v1", api_key="unused", max_retries=0)


def test_validation_errors_are_bad_request_errors(live_url):
    with pytest.raises(openai.BadRequestError) as error:
        sdk(live_url).chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}], n=0)
    assert error.value.status_code == 400 and error.value.body["param"] == "n"


def test_text_parts_and_the_developer_role(live_url):
    messages = [
        {"role": "developer", "content": "Answer with one number."},
        {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "2 + 3?"}]},
    ]
    response = sdk(live_url).chat.completions.create(
        model="default", messages=messages, max_tokens=8, temperature=0, logprobs=True
    )
    choice = response.choices[0]
    assert choice.message.content and choice.logprobs is not None
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    image = {"type": "image_url", "image_url": {"url": "http://example.com/x.png"}}
    with pytest.raises(openai.BadRequestError):
        sdk(live_url).chat.completions.create(model="default", messages=[{"role": "user", "content": [image]}])


def test_a_list_of_prompts(live_url):
    prompts = ["1, 2, 3,", "The capital of France is"]
    response = sdk(live_url).completions.create(model="default", prompt=prompts, max_tokens=4, n=2, temperature=0)
    assert [c.index for c in response.choices] == [0, 1, 2, 3]
    candidates = [c.model_extra["l2t"]["candidate_index"] for c in response.choices]
    assert sorted(candidates[:2]) == [0, 1] and sorted(candidates[2:]) == [0, 1]  # n per prompt, best first
    assert response.usage.completion_tokens == sum(c.model_extra["l2t"]["completion_tokens"] for c in response.choices)


def test_prompts_times_n_within_the_limit(client):
    from tests.app.test_hardening import envelope

    response = client.post("/v1/completions", json={"prompt": ["a"] * 33, "n": 2, "max_tokens": 2})
    assert response.status_code == 400 and "33 prompts × n=2 exceeds" in envelope(response)["message"]
