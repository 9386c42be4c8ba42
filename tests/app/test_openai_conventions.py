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


def test_a_logit_bias_steers_greedy_decoding_on_both_routes(live_url, loaded_model):
    """OpenAI's form (token ids as strings) through the SDK; +100 on one token makes it the only one."""
    seven = loaded_model.tokenizer.convert_tokens_to_ids("7")
    bias = {str(seven): 100}
    completion = sdk(live_url).completions.create(
        model="default", prompt="1, 2, 3,", max_tokens=4, temperature=0, logit_bias=bias
    )
    assert completion.choices[0].text == "7777"
    chat = sdk(live_url).chat.completions.create(
        model="default", messages=CHAT, max_tokens=3, temperature=0, logit_bias=bias
    )
    # after the prompt format's prefill (`<episode_1>`), which is part of the answer's text
    assert chat.choices[0].message.content.endswith("777") and chat.usage.completion_tokens == 3


def test_penalties_change_a_repetitive_greedy_continuation(client):
    """Greedy SmolLM2 repeats " hello" 16 times; a penalty of 2 on the tokens it generated breaks the loop."""
    body = {"prompt": "Repeat after me: hello hello hello", "max_tokens": 16, "temperature": 0}
    plain = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    assert plain == " hello" * 16
    for field in ("presence_penalty", "frequency_penalty"):
        response = client.post("/v1/completions", json={**body, field: 2})
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["text"] != plain, field


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("presence_penalty", 2.5, "less than or equal to 2"),
        ("frequency_penalty", -2.01, "greater than or equal to -2"),
        ("logit_bias", {"15": 101}, "less than or equal to 100"),
        ("logit_bias", {"fifteen": 1}, "should match pattern"),
        ("logit_bias", {str(i): 1 for i in range(301)}, "at most 300 items"),
        ("logit_bias", {"49152": 1}, "outside the vocabulary of 49152 tokens"),
        ("logit_bias", {"15": 1, "015": 2}, "names a token id twice"),
    ],
)
def test_penalties_and_logit_bias_out_of_range_are_refused_by_name(client, field, value, message):
    response = client.post("/v1/chat/completions", json={"messages": CHAT, "max_tokens": 2, field: value})
    error = envelope(response)
    assert response.status_code == 400 and error["param"].split(".")[0] == field and message in error["message"]


def test_best_of_samples_more_and_returns_the_n_best(client):
    """best_of=3, n=1 is the n=3 request (same seed, same candidates) cut to its best choice; usage counts
    all three candidates, as OpenAI's does."""
    body = {"prompt": "What is 3 + 4? Answer:", "max_tokens": 8, "temperature": 1.0, "seed": 5}
    body |= {"l2t_strategy": "best_of_n"}
    three = client.post("/v1/completions", json={**body, "n": 3}).json()
    best = client.post("/v1/completions", json={**body, "n": 1, "best_of": 3}).json()
    assert len(three["choices"]) == 3 and len(best["choices"]) == 1
    assert best["choices"][0]["text"] == three["choices"][0]["text"]
    assert best["choices"][0]["l2t"] == three["choices"][0]["l2t"]
    assert best["usage"] == three["usage"]
    assert best["usage"]["completion_tokens"] == sum(c["l2t"]["completion_tokens"] for c in three["choices"])
    two = client.post("/v1/completions", json={**body, "n": 2, "best_of": 3}).json()
    assert [c["text"] for c in two["choices"]] == [c["text"] for c in three["choices"][:2]]
    assert [c["index"] for c in two["choices"]] == [0, 1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"n": 3, "best_of": 2}, "best_of=2 must be at least n=3"),
        ({"n": 1, "best_of": 2, "stream": True}, "cannot be streamed"),
    ],
)
def test_best_of_below_n_or_streamed_is_refused_by_name(client, extra, message):
    response = client.post("/v1/completions", json={"prompt": "1, 2, 3,", "max_tokens": 2, **extra})
    error = envelope(response)
    assert response.status_code == 400 and error["param"] == "best_of" and message in error["message"]


def test_prompts_times_best_of_within_the_limit(client):
    response = client.post("/v1/completions", json={"prompt": ["a"] * 33, "best_of": 2, "max_tokens": 2})
    assert response.status_code == 400 and "33 prompts × best_of=2 exceeds" in envelope(response)["message"]


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
