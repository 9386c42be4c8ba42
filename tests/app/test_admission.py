"""Requests within every per-field limit that would still hold the server for minutes are refused at
admission, in tokens, before any work starts (the regression tests of the hardening table)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

CJK_PROMPT = "漢字の問題" * 6_200  # 31,000 characters, ~10× SmolLM2's 8,192-token context
LONG_COMPLETION = "<episode_1>" + "12345 + 67890 = 80235. " * 1_300  # ~30,000 characters


def refused(client: TestClient, path: str, body: dict[str, object], code: str) -> dict[str, object]:
    started = time.perf_counter()
    response = client.post(path, json=body)
    elapsed = time.perf_counter() - started
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert elapsed < 10, f"refused only after {elapsed:.1f} s: admission must come before the work"
    return dict(error)


def test_a_prompt_longer_than_the_context_is_refused_on_every_route(client: TestClient) -> None:
    error = refused(client, "/generate", {"prompt": CJK_PROMPT, "n": 2, "max_tokens": 32}, "context_length_exceeded")
    assert "context is 8192 tokens" in str(error["message"]) and error["param"] == "prompt"
    chat = {"messages": [{"role": "user", "content": CJK_PROMPT}], "max_tokens": 8}
    refused(client, "/v1/chat/completions", chat, "context_length_exceeded")
    refused(client, "/v1/completions", {"prompt": CJK_PROMPT, "max_tokens": 8}, "context_length_exceeded")
    stream = {"prompt": CJK_PROMPT, "max_tokens": 8, "stream": True}
    refused(client, "/v1/completions", stream, "context_length_exceeded")


def test_a_prompt_that_leaves_no_room_for_max_tokens_is_refused(client: TestClient) -> None:
    prompt = "What is the sum of these numbers? " + "7 " * 3_500  # ~7,000 tokens, within the context
    body = {"prompt": prompt, "n": 1, "max_tokens": 2048}
    error = refused(client, "/generate", body, "context_length_exceeded")
    assert error["param"] == "max_tokens"


def test_score_refuses_completions_longer_than_the_context(client: TestClient) -> None:
    body = {"question": "What is 12345 + 67890?", "completions": [LONG_COMPLETION] * 8}
    error = refused(client, "/score", body, "context_length_exceeded")
    assert error["param"] == "completions.0"


def test_the_request_work_limit_holds_for_sampling_and_search(client: TestClient) -> None:
    # 64 × (prompt + 2,048) is over 16 contexts (131,072 tokens) although n and max_tokens are within limits
    body = {"prompt": "What is 2 + 2?", "n": 64, "max_tokens": 2048}
    error = refused(client, "/generate", body, "too_large")
    assert "131072" in str(error["message"]) and "L2T_MAX_REQUEST_TOKENS" in str(error["message"])
    refused(client, "/v1/completions", {"prompt": "2 + 2 =", "n": 64, "max_tokens": 2048}, "too_large")
    # beam-prune re-reads every prefix each round: 16 paths of 2,048 tokens are too much work
    search = {"prompt": "What is 2 + 2?", "n": 16, "max_tokens": 2048, "strategy": "beam_prune"}
    refused(client, "/generate", search, "too_large")
    # several prompts of one /v1/completions call count together
    many = {"prompt": ["2 + 2 ="] * 8, "n": 8, "max_tokens": 2048}
    refused(client, "/v1/completions", many, "too_large")


def test_an_ordinary_request_is_still_admitted(client: TestClient) -> None:
    response = client.post("/generate", json={"prompt": "What is 2 + 2?", "n": 2, "max_tokens": 16})
    assert response.status_code == 200, response.text
