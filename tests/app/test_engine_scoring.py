"""The server scoring on its engine (`L2T_SCORER=engine`): no scorer copy of the model, every compression
penalty null with the reason in the response, rewards null unless β = 0, and the strategies that rank by
the L2T path score refused with a 400 naming the strategy. The tiny random model on the transformers
engine (the CPU twin of vLLM's teacher-forcing) keeps it in seconds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.core.config import Settings
from app.core.runtime import Runtime
from app.main import create_app
from l2t_core.scoring import COMPRESSION_ABSENT

QUESTION = "What is 3 + 4?"
COMPLETIONS = ["<episode_1>3 + 4 = 7</episode_1>\nThe final answer is \\boxed{7}.", "It is \\boxed{8}."]


@pytest.fixture(scope="module")
def engine_client(scorer_model: Any) -> Iterator[TestClient]:
    runtime = Runtime(Settings(model=scorer_model.name, scorer="engine", device="cpu"))
    runtime.start(scorer_model)
    with TestClient(create_app(runtime=runtime)) as client:
        yield client


def test_score_reports_the_compression_penalty_as_absent_with_the_reason(engine_client: TestClient) -> None:
    response = engine_client.post("/score", json={"question": QUESTION, "completions": COMPLETIONS, "reference": "7"})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["compression_penalty_absent"] == COMPRESSION_ABSENT
    for candidate in data["candidates"]:
        assert candidate["score"] is None
        assert all(e["compression_penalty"] is None and e["reward"] is None for e in candidate["episodes"])
    at_zero = engine_client.post(
        "/score", json={"question": QUESTION, "completions": COMPLETIONS, "reference": "7", "beta": 0}
    ).json()
    for candidate in at_zero["candidates"]:
        assert all(e["reward"] == e["fitting_gain"] for e in candidate["episodes"])
        assert candidate["score"] is not None


def test_generate_runs_loglik_and_refuses_best_of_n_by_name(engine_client: TestClient) -> None:
    body = {"prompt": QUESTION, "n": 2, "max_tokens": 8, "seed": 1}
    assert engine_client.get("/health").json()["scorer"] == "engine"
    served = engine_client.post("/generate", json={**body, "strategy": "loglik"})
    assert served.status_code == 200, served.text
    assert served.json()["compression_penalty_absent"] == COMPRESSION_ABSENT
    refused = engine_client.post("/generate", json={**body, "strategy": "best_of_n"})
    assert refused.status_code == 400
    assert "best_of_n" in refused.text and "compression penalty" in refused.text
    assert engine_client.post("/generate", json={**body, "strategy": "best_of_n", "beta": 0}).status_code == 200
    string = engine_client.post("/generate", json={**body, "suffix_probability": "string"})
    assert string.status_code == 400 and "suffix_probability" in string.text


def test_the_default_server_measures_the_compression_penalty(client: TestClient) -> None:
    data = client.post("/score", json={"question": QUESTION, "completions": COMPLETIONS[:1]}).json()
    assert data["compression_penalty_absent"] is None
    assert all(e["compression_penalty"] is not None for e in data["candidates"][0]["episodes"])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"scorer": "engine", "scorer_model": "other"}, "takes no scorer_model"),
        ({"scorer": "engine", "suffix_probability": "string"}, "suffix_probability 'token'"),
        ({"scorer": "gpu"}, "scorer must be one of torch, engine"),
        ({"scorer": "engine", "strategy": "weighted_vote"}, "cannot serve strategy 'weighted_vote' as the default"),
    ],
)
def test_settings_that_contradict_engine_scoring_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**settings)


def test_a_refused_stream_is_an_error_not_a_cut_stream(engine_client: TestClient) -> None:
    body = {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8, "stream": True}
    refused = engine_client.post("/v1/chat/completions", json={**body, "l2t_strategy": "best_of_n"})
    assert refused.status_code == 400 and "best_of_n" in refused.text
