"""The server with a scorer model of its own (`L2T_SCORER_MODEL`): SmolLM2 generates, a second model (tiny,
its own tokenizer and chat template) scores. Every surface says which model scored (/health, /generate,
/score, the ready line); /score's numbers are the scorer model's for the question in its own template;
OpenAI log-probs are the scorer's tokens, decoded with its tokenizer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.runtime import Runtime
from app.main import create_app
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, prompt_format
from l2t_core.scoring import L2TScorer

QUESTION = "What is 17 + 25?"


@pytest.fixture(scope="module")
def scored_client(loaded_model: Any, scorer_model: Any) -> Iterator[TestClient]:
    runtime = Runtime(Settings(scorer_model=scorer_model.name))
    runtime.start(loaded_model, scorer_model)
    with TestClient(create_app(runtime=runtime)) as client:
        yield client


def test_every_answer_names_the_scorer_model(scored_client: TestClient, scorer_model: Any) -> None:
    health = scored_client.get("/health").json()
    assert health["model"] == "default" and health["scorer_model"] == scorer_model.name
    body = {"prompt": QUESTION, "n": 2, "max_tokens": 8, "seed": 1, "return_candidates": True}
    generated = scored_client.post("/generate", json=body)
    assert generated.status_code == 200, generated.text
    data = generated.json()
    assert data["model"] == "default" and data["scorer_model"] == scorer_model.name
    for candidate in data["candidates"]:  # scored in the scorer's vocabulary
        assert candidate["n_tokens"] == len(
            scorer_model.tokenizer(candidate["text"], add_special_tokens=False).input_ids
        )


def test_score_is_the_scorer_models_in_its_own_template(scored_client: TestClient, scorer_model: Any) -> None:
    completions = ["<episode_1>17 + 25 = 42</episode_1>\nThe answer is \\boxed{42}.", "I like turtles. \\boxed{3}"]
    response = scored_client.post("/score", json={"question": QUESTION, "completions": completions, "reference": "42"})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["scorer_model"] == scorer_model.name
    own_template = prompt_format(DEFAULT_PROMPT_FORMAT).render(scorer_model.tokenizer, QUESTION).text
    expected = L2TScorer(scorer_model.model, scorer_model.tokenizer).score(own_template, completions, "42")
    for got, want in zip(data["candidates"], expected, strict=True):
        assert got["score"] == pytest.approx(want.score, rel=1e-6, abs=1e-12)
        assert got["mean_logprob"] == pytest.approx(want.mean_logprob, rel=1e-6)
    assert data["usage"]["prompt_tokens"] == len(
        scorer_model.tokenizer(own_template, add_special_tokens=False).input_ids
    )


def test_chat_logprobs_are_the_scorers_tokens(scored_client: TestClient) -> None:
    body = {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8, "temperature": 0, "logprobs": True}
    choice = scored_client.post("/v1/chat/completions", json=body).json()["choices"][0]
    tokens = choice["logprobs"]["content"]
    assert "".join(t["token"] for t in tokens) == choice["message"]["content"]
    assert sum(t["logprob"] for t in tokens) / len(tokens) == pytest.approx(choice["l2t"]["mean_logprob"], abs=1e-5)


def test_the_default_server_is_scored_by_its_own_model(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["scorer_model"] == health["model"] == "default"


def test_load_reads_the_scorer_model_and_the_ready_line_names_it(
    scorer_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = Runtime(Settings(scorer_model=scorer_model.name, device="cpu"))
    with caplog.at_level(logging.INFO, logger="app.core.runtime"):
        runtime.load()
    try:
        assert runtime.load_error is None and runtime.pipeline is not None
        assert runtime.pipeline.scorer_model == scorer_model.name and runtime.pipeline.model_name == "default"
        ready = [r.getMessage() for r in caplog.records if "ready on" in r.getMessage()]
        assert ready and f"model default, scorer {scorer_model.name}," in ready[-1]
    finally:
        runtime.close()


def test_a_remote_engine_generates_and_the_scorer_model_scores(live_url: str, scorer_model: Any) -> None:
    """`L2T_ENGINE=openai`: another server (a live l2t on loopback, serving SmolLM2) generates; here only the
    generator's tokenizer is loaded (for its chat template) and the scorer model scores."""
    settings = Settings(engine="openai", remote_url=live_url, scorer_model=scorer_model.name, device="cpu")
    runtime = Runtime(settings)
    runtime.load()
    assert runtime.load_error is None and runtime.pipeline is not None
    with TestClient(create_app(runtime=runtime)) as client:
        body = {"prompt": QUESTION, "n": 2, "max_tokens": 8, "seed": 2, "return_candidates": True}
        response = client.post("/generate", json=body)
        assert response.status_code == 200, response.text
    data = response.json()
    assert data["scorer_model"] == scorer_model.name and data["usage"]["completion_tokens"] > 0
    own_template = prompt_format(DEFAULT_PROMPT_FORMAT).render(scorer_model.tokenizer, QUESTION).text
    texts = [c["text"] for c in sorted(data["candidates"], key=lambda c: c["index"])]
    expected = L2TScorer(scorer_model.model, scorer_model.tokenizer).score(own_template, texts)
    for got, want in zip(sorted(data["candidates"], key=lambda c: c["index"]), expected, strict=True):
        assert got["mean_logprob"] == pytest.approx(want.mean_logprob, rel=1e-6)
        assert got["score"] == pytest.approx(want.score, rel=1e-6, abs=1e-12)
