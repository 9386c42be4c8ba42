"""/tokenize, /detokenize and /version in vLLM's shapes, on the real embedded model's tokenizer."""

from __future__ import annotations

import pytest

from l2t_core import __version__
from tests.app.test_hardening import envelope

CHAT = [{"role": "user", "content": "What is 2 + 3?"}]


def test_a_prompt_round_trips(client, loaded_model):
    prompt = "The capital of France is Paris. 日本語 🙂"
    body = client.post("/tokenize", json={"prompt": prompt, "return_token_strs": True}).json()
    assert set(body) == {"count", "max_model_len", "tokens", "token_strs"}
    assert body["tokens"] == loaded_model.tokenizer(prompt)["input_ids"] and body["count"] == len(body["tokens"])
    assert body["token_strs"] == loaded_model.tokenizer.convert_ids_to_tokens(body["tokens"])
    assert body["max_model_len"] == loaded_model.model.config.max_position_embeddings  # 8192: the tokenizer says none
    assert client.post("/detokenize", json={"tokens": body["tokens"]}).json() == {"prompt": prompt}
    plain = client.post("/tokenize", json={"prompt": prompt}).json()
    assert plain["token_strs"] is None and plain["tokens"] == body["tokens"]


def test_a_chat_is_rendered_with_the_chat_template(client, loaded_model):
    tokenizer = loaded_model.tokenizer
    chat = client.post("/tokenize", json={"model": "default", "messages": CHAT}).json()
    rendered = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert chat["tokens"] == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert client.post("/detokenize", json={"tokens": chat["tokens"]}).json()["prompt"] == rendered
    bare = client.post("/tokenize", json={"messages": CHAT, "add_generation_prompt": False}).json()
    assert bare["count"] < chat["count"]
    assert chat["tokens"][: bare["count"]] == bare["tokens"]  # the assistant turn's opening is what is added
    parts = [{"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "2 + 3?"}]}]
    assert client.post("/tokenize", json={"messages": parts}).json()["tokens"] == chat["tokens"]


@pytest.mark.parametrize(
    ("body", "status", "param", "message"),
    [
        ({}, 422, None, "exactly one of 'prompt' or 'messages'"),
        ({"prompt": "a", "messages": CHAT}, 422, None, "exactly one of 'prompt' or 'messages'"),
        ({"prompt": "a", "add_generation_prompt": True}, 422, None, "applies to messages only"),
        ({"prompt": "a", "chat_template": "{{ x }}"}, 422, "chat_template", "Extra inputs"),
        ({"prompt": "a" * 32_001}, 400, "prompt", "the limit is 32000"),
        ({"messages": [{"role": "user", "content": "a" * 32_000}]}, 400, "messages", "the limit is 32000"),
        ({"prompt": "a", "model": "gpt-4"}, 404, "model", "is not served here"),
    ],
)
def test_tokenize_refuses_what_it_cannot_serve(client, body, status, param, message):
    response = client.post("/tokenize", json=body)
    error = envelope(response)
    assert response.status_code == status and error["param"] == param and message in error["message"]


@pytest.mark.parametrize(
    ("tokens", "status", "param", "message"),
    [
        ([6004, 49152], 400, "tokens.1", "outside the vocabulary (ids 0 to 49151)"),
        ([-1], 422, "tokens.0", "greater than or equal to 0"),
        ([1] * 32_001, 400, "tokens", "the limit is 32000"),
    ],
)
def test_detokenize_refuses_ids_it_cannot_decode(client, tokens, status, param, message):
    response = client.post("/detokenize", json={"tokens": tokens})
    error = envelope(response)
    assert response.status_code == status and error["param"] == param and message in error["message"]


def test_detokenize_of_nothing_is_empty(client):
    assert client.post("/detokenize", json={"tokens": []}).json() == {"prompt": ""}


def test_version(client):
    assert client.get("/version").json() == {"version": __version__}
