"""What OpenAI-SDK users rely on (vLLM's server does the same): BadRequestError for bad input, text
parts and the developer role, a list of prompts, per-token log-probs."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from tests.app.test_hardening import envelope


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
    response = client.post("/v1/completions", json={"prompt": ["a"] * 33, "n": 2, "max_tokens": 2})
    assert response.status_code == 400 and "33 prompts × n=2 exceeds" in envelope(response)["message"]


CHAT = [{"role": "user", "content": "What is 2 + 3?"}]
UNSUPPORTED = [
    ("/v1/chat/completions", "response_format", {"type": "json_object"}),
    ("/v1/chat/completions", "response_format", {"type": "json_schema", "json_schema": {"name": "x"}}),
    ("/v1/chat/completions", "tools", [{"type": "function", "function": {"name": "add"}}]),
    ("/v1/chat/completions", "tool_choice", "auto"),
    ("/v1/chat/completions", "functions", [{"name": "add"}]),
    ("/v1/chat/completions", "function_call", {"name": "add"}),
    ("/v1/chat/completions", "logit_bias", {"15": -100}),
    ("/v1/chat/completions", "presence_penalty", 0.5),
    ("/v1/completions", "frequency_penalty", -1),
    ("/v1/completions", "logit_bias", {"15": 5}),
    ("/v1/completions", "best_of", 3),
    ("/v1/completions", "echo", True),
    ("/v1/completions", "suffix", " and so on."),
]


@pytest.mark.parametrize(("path", "field", "value"), UNSUPPORTED, ids=[f"{p[4:]}-{f}" for p, f, _ in UNSUPPORTED])
def test_a_field_this_server_cannot_honour_is_refused_by_name(client, path, field, value):
    base = {"messages": CHAT} if "chat" in path else {"prompt": "1, 2, 3,"}
    response = client.post(path, json={**base, "max_tokens": 2, field: value})
    error = envelope(response)
    assert response.status_code == 400 and error["param"] == field
    assert error["message"].startswith(f"{field}: ") and "not supported by this server" in error["message"]


def test_neutral_values_of_those_fields_are_accepted(client):
    neutral = {"response_format": {"type": "text"}, "tools": [], "tool_choice": "none", "logit_bias": {}}
    neutral |= {"presence_penalty": 0, "frequency_penalty": 0.0, "user": "someone"}
    chat = client.post("/v1/chat/completions", json={"messages": CHAT, "max_tokens": 2, **neutral})
    assert chat.status_code == 200, chat.text
    body = {"prompt": "1, 2, 3,", "max_tokens": 2, "n": 2, "best_of": 2, "echo": False, "suffix": None}
    completion = client.post("/v1/completions", json=body)
    assert completion.status_code == 200, completion.text
    assert len(completion.json()["choices"]) == 2


def test_an_unknown_field_is_refused_by_name(client):
    """A field OpenAI has on the other route, a vLLM sampling extension and a misspelling: none may run."""
    for path, field, value in [
        ("/v1/completions", "tools", []),
        ("/v1/chat/completions", "top_k", 5),
        ("/v1/chat/completions", "max_token", 3),
    ]:
        base = {"messages": CHAT} if "chat" in path else {"prompt": "1, 2, 3,"}
        response = client.post(path, json={**base, field: value})
        assert response.status_code == 400 and envelope(response)["param"] == field, (path, field)


def test_stream_options_only_with_stream_and_only_include_usage(client):
    off = client.post("/v1/chat/completions", json={"messages": CHAT, "stream_options": {"include_usage": True}})
    assert off.status_code == 400 and envelope(off)["param"] == "stream_options"
    extra = {
        "messages": CHAT,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    unknown = client.post("/v1/chat/completions", json=extra)
    assert unknown.status_code == 400 and envelope(unknown)["param"] == "stream_options.continuous_usage_stats"


def test_the_sdk_hears_a_bad_request_for_structured_output(live_url):
    with pytest.raises(openai.BadRequestError) as error:
        sdk(live_url).chat.completions.create(
            model="default", messages=CHAT, max_tokens=2, response_format={"type": "json_object"}
        )
    assert error.value.body["param"] == "response_format"


@pytest.mark.parametrize(
    ("stop", "message"),
    [(["a", "b", "c", "d", "e"], "at most 4 stop strings are allowed, got 5"), ("x" * 257, "the limit is 256")],
)
def test_stop_strings_over_the_limits_are_refused(client, stop, message):
    response = client.post("/v1/completions", json={"prompt": "1, 2, 3,", "max_tokens": 2, "stop": stop})
    error = envelope(response)
    assert response.status_code == 400 and error["param"] == "stop" and message in error["message"]
