"""POST /generate and /score contracts on the real embedded model."""

from __future__ import annotations

from collections import Counter

import pytest
from fastapi.testclient import TestClient

from l2t_core.answers import normalize_answer
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, prompt_format
from l2t_core.scoring import L2TScorer
from l2t_core.search import DEFAULT_STRATEGY, MAX_ANSWER_PROBES, PROGRESS_SETTINGS, rank_candidates, with_progress
from tests.app.conftest import make_app

QUESTION = "What is 17 + 25?"


@pytest.fixture(scope="module")
def generated(client):
    body = {"prompt": QUESTION, "n": 3, "max_tokens": 24, "seed": 7, "return_candidates": True}
    response = client.post("/generate", json=body, headers={"X-Request-Id": "my-request-1"})
    assert response.status_code == 200, response.text
    return response


def test_generate_contract(generated):
    data = generated.json()
    assert generated.headers["x-request-id"] == "my-request-1" == data["id"]
    assert data["object"] == "l2t.generation"
    assert data["scorer_model"] == data["model"] == "default"  # one model generates and scores
    assert data["strategy"] == DEFAULT_STRATEGY and data["prompt_format"] == DEFAULT_PROMPT_FORMAT
    candidates = data["candidates"]
    assert len(candidates) == 3 and data["chosen"] == candidates[0]
    assert sorted(c["index"] for c in candidates) == [0, 1, 2]
    for c in candidates:
        assert c["text"].startswith(prompt_format(DEFAULT_PROMPT_FORMAT).prefill)  # the prefill is part of it
        assert isinstance(c["tagged"], bool)
        assert c["finish_reason"] in ("stop", "length")
        for e in c["episodes"]:
            assert c["text"][e["start"] : e["end"]] == e["text"]
            assert e["reward"] == pytest.approx(e["fitting_gain"] - 0.6 * e["compression_penalty"])
    usage = data["usage"]
    assert 0 < usage["completion_tokens"] <= 3 * 24
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["scoring_tokens"] >= usage["prompt_tokens"]
    assert data["timings"]["generate_ms"] > 0 and data["timings"]["score_ms"] > 0


def test_same_seed_same_candidates(client, generated):
    again = client.post(
        "/generate", json={"prompt": QUESTION, "n": 3, "max_tokens": 24, "seed": 7, "return_candidates": True}
    ).json()
    texts = sorted(c["text"] for c in generated.json()["candidates"])
    assert sorted(c["text"] for c in again["candidates"]) == texts
    assert (
        "candidates" in again
        and client.post("/generate", json={"prompt": QUESTION, "n": 1, "max_tokens": 4}).json()["candidates"] is None
    )


@pytest.fixture(scope="module")
def scorer(loaded_model):
    return L2TScorer(loaded_model.model, loaded_model.tokenizer)


@pytest.mark.parametrize(
    "strategy", ["best_of_n", "weighted_vote", "majority", "loglik", "confidence", "first", "posterior_vote"]
)
def test_strategies_rank_the_pool_as_the_library_does(client, loaded_model, scorer, strategy):
    """Same seed, same pool: the returned order must be the library's ranking of that pool under the strategy
    (a server that ignored the strategy would return one order for all of them)."""
    body = {"prompt": QUESTION, "n": 4, "max_tokens": 16, "seed": 3, "strategy": strategy, "return_candidates": True}
    data = client.post("/generate", json=body).json()
    assert data["strategy"] == strategy
    candidates = sorted(data["candidates"], key=lambda c: c["index"])
    prompt = prompt_format(DEFAULT_PROMPT_FORMAT).render(loaded_model.tokenizer, QUESTION)
    probes = MAX_ANSWER_PROBES if strategy == "posterior_vote" else 0
    scores = scorer.score(prompt.text, [c["text"] for c in candidates], answer_probes=probes)
    assert [c["index"] for c in data["candidates"]] == rank_candidates(scores, strategy)
    if strategy == "majority":
        answered = Counter(normalize_answer(c["answer"]) for c in candidates if c["answer"] is not None)
        if answered:
            assert answered[normalize_answer(data["chosen"]["answer"])] == max(answered.values())


def test_strategy_synonyms_and_unknown_names(client):
    body = {"prompt": QUESTION, "n": 2, "max_tokens": 8, "seed": 3, "strategy": "l2t_vote"}
    assert client.post("/generate", json=body).json()["strategy"] == "weighted_vote"
    response = client.post("/generate", json={**body, "strategy": "oracle"})  # evaluation only: needs the answer
    assert response.status_code == 422 and "strategy" in response.json()["error"]["param"]


@pytest.mark.parametrize("name", ["episode", "short", "worked", "plain"])
def test_prompt_formats_are_served(client, loaded_model, name):
    body = {"prompt": QUESTION, "n": 1, "max_tokens": 8, "seed": 1, "prompt_format": name, "return_candidates": True}
    data = client.post("/generate", json=body).json()
    assert data["prompt_format"] == name
    fmt = prompt_format(name)
    assert data["chosen"]["text"].startswith(fmt.prefill)
    rendered = fmt.render(loaded_model.tokenizer, QUESTION).text
    assert data["usage"]["prompt_tokens"] == len(
        loaded_model.tokenizer(rendered + fmt.prefill, add_special_tokens=False)["input_ids"]
    )


def test_messages_input_and_reference(client):
    body = {
        "messages": [{"role": "user", "content": "What is 2 + 3? Put the answer in \\boxed{}."}],
        "n": 2,
        "max_tokens": 16,
        "seed": 1,
        "reference": "5",
        "return_candidates": True,
    }
    data = client.post("/generate", json=body).json()
    assert {c["target"] for c in data["candidates"]} == {"5"}


def test_score_equals_the_library(client, loaded_model):
    completions = ["17 + 25 = 42.\n\nThe answer is \\boxed{42}.", "I like turtles.\n\nThe answer is 3."]
    response = client.post("/score", json={"question": QUESTION, "completions": completions, "reference": "42"})
    assert response.status_code == 200, response.text
    data = response.json()
    scorer = L2TScorer(loaded_model.model, loaded_model.tokenizer)
    expected = scorer.score(
        prompt_format(DEFAULT_PROMPT_FORMAT).render(loaded_model.tokenizer, QUESTION).text, completions, "42"
    )
    assert [c["index"] for c in data["candidates"]] == [0, 1]
    for got, want in zip(data["candidates"], expected, strict=True):
        assert got["score"] == pytest.approx(want.score, rel=1e-6, abs=1e-12)
        assert got["answer"] == want.answer and len(got["episodes"]) == len(want.episodes)
    assert data["usage"]["completion_tokens"] == sum(c.n_tokens for c in expected)


def test_score_progress_is_the_library_s(client, loaded_model):
    completions = [
        "<episode_1>17 + 25 = 42.</episode_1>\nThe final answer is \\boxed{42}.",
        "<episode_1>17 + 25 = 42.</episode_1>\nThe final answer is \\boxed{42}.",
        "<episode_1>17 + 20 = 37.</episode_1>\n<episode_2>37 + 5 = 41.</episode_2>\nThe final answer is \\boxed{41}.",
    ]
    response = client.post("/score", json={"question": QUESTION, "completions": completions, "progress": True})
    assert response.status_code == 200, response.text
    scorer = L2TScorer(loaded_model.model, loaded_model.tokenizer)
    text = prompt_format(DEFAULT_PROMPT_FORMAT).render(loaded_model.tokenizer, QUESTION).text
    expected = with_progress(scorer.score(text, completions, answer_probes=MAX_ANSWER_PROBES), PROGRESS_SETTINGS)
    for got, want in zip(response.json()["candidates"], expected, strict=True):
        assert [e["progress"] for e in got["episodes"]] == pytest.approx([e.progress for e in want.episodes])
        assert all(e["progress"] is not None for e in got["episodes"])
    plain = client.post("/score", json={"question": QUESTION, "completions": completions}).json()
    assert all(e["progress"] is None for c in plain["candidates"] for e in c["episodes"])


def test_adaptive_strategy(client):
    body = {"prompt": QUESTION, "n": 4, "max_tokens": 16, "seed": 1, "strategy": "adaptive", "return_candidates": True}
    data = client.post(
        "/generate", json={**body, "adaptive": {"round_size": 2, "stop": "vote", "confidence": 0.8}}
    ).json()
    assert data["strategy"] == "adaptive" and data["samples_drawn"] in (2, 4)
    assert len(data["candidates"]) == data["samples_drawn"]
    assert data["usage"]["completion_tokens"] <= 4 * 16
    bad = client.post("/generate", json={**body, "strategy": "majority", "adaptive": {"confidence": 0.9}})
    assert bad.status_code == 422 and "adaptive" in bad.json()["error"]["message"]
    bad = client.post("/generate", json={**body, "adaptive": {"select": "beam_prune"}})
    assert bad.status_code == 422 and "select" in bad.json()["error"]["message"]
    bad = client.post("/generate", json={**body, "adaptive": {"min_logprob": 0.5}})
    assert bad.status_code == 422 and "min_logprob" in bad.json()["error"]["message"]


def test_score_overrides(client):
    body = {
        "question": QUESTION,
        "completions": ["17 + 25 = 42.\n\nSo 42 is it.\n\nThe answer is 42."],
        "beta": 0.0,
        "aggregation": "min",
        "target": "self",
    }
    data = client.post("/score", json=body).json()
    candidate = data["candidates"][0]
    assert all(e["reward"] == e["fitting_gain"] for e in candidate["episodes"])
    assert candidate["score"] == min(e["reward"] for e in candidate["episodes"])
    # J's suffix scored as a string: every J at least the suffix token's own (which is one of the summed)
    string = client.post("/score", json={**body, "suffix_probability": "string"}).json()["candidates"][0]
    for e_string, e_token in zip(string["episodes"], candidate["episodes"], strict=True):
        assert e_string["j_after"] >= e_token["j_after"] > 0
    assert string["episodes"][-1]["j_after"] > 2 * candidate["episodes"][-1]["j_after"]
    bad = client.post("/score", json={**body, "suffix_probability": "bytes"})
    assert bad.status_code == 422 and "suffix_probability" in bad.json()["error"]["message"]


def test_the_server_default_suffix_probability_is_what_a_request_names(loaded_model, client):
    """`L2T_SUFFIX_PROBABILITY=string` serves what a request naming it gets from the default server."""
    body = {"question": QUESTION, "completions": ["17 + 25 = 42.\n\nThe answer is 42."]}
    with TestClient(make_app(loaded_model, suffix_probability="string")) as string_server:
        served = string_server.post("/score", json=body).json()["candidates"][0]
    named = client.post("/score", json={**body, "suffix_probability": "string"}).json()["candidates"][0]
    assert served["episodes"] == named["episodes"]
    assert served["episodes"] != client.post("/score", json=body).json()["candidates"][0]["episodes"]


@pytest.mark.parametrize("search", [{}, {"value": "pool", "exit_confidence": 0.5}])
def test_beam_prune_strategy(client, search):
    body = {
        "prompt": QUESTION,
        "n": 3,
        "max_tokens": 40,
        "strategy": "beam_prune",
        "beam": {"episode_tokens": 16, "max_episodes": 3, "keep_ratio": 0.5, "min_live": 1, **search},
        "return_candidates": True,
    }
    response = client.post("/generate", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["strategy"] == "beam_prune"
    # the default budget is n * max_tokens, answer probes included
    assert 0 < data["usage"]["completion_tokens"] <= 3 * 40
    assert data["chosen"] == data["candidates"][0]
    for c in data["candidates"]:
        assert c["finish_reason"] in ("stop", "exit", "forced")  # never an unfinished prefix
        assert c["text"].startswith("<episode_1>")


@pytest.mark.parametrize(
    "extra, status, message",
    [
        ({"strategy": "majority", "beam": {"episode_tokens": 8}}, 422, "beam"),  # beam settings, other strategy
        ({"beam": {"episode_tokens": 8}}, 422, "beam"),  # ... or without naming beam_prune
        ({"strategy": "beam_prune", "beam": {"keep_ratio": 0}}, 422, "keep_ratio"),
        ({"strategy": "beam_prune", "beam": {"token_budget": 5}}, 422, "token_budget"),
        ({"strategy": "beam_prune", "beam": {"surprise": 1}}, 422, "surprise"),
        ({"strategy": "beam_prune", "beam": {"value": "self"}}, 422, "value"),
        ({"strategy": "beam_prune", "beam": {"exit_confidence": 0}}, 422, "exit_confidence"),
    ],
)
def test_beam_prune_bad_settings(client, extra, status, message):
    response = client.post("/generate", json={"prompt": QUESTION, "n": 2, **extra})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]


def test_generate_takes_penalties_and_a_logit_bias_as_openai_names_them(client, loaded_model):
    seven = loaded_model.tokenizer.convert_tokens_to_ids("7")
    body = {"prompt": QUESTION, "n": 1, "max_tokens": 3, "temperature": 0, "return_candidates": True}
    response = client.post("/generate", json={**body, "logit_bias": {str(seven): 100}, "frequency_penalty": 0.5})
    assert response.status_code == 200, response.text
    prefill = prompt_format(DEFAULT_PROMPT_FORMAT).prefill
    assert response.json()["chosen"]["text"] == prefill + "777"
    refused = client.post("/generate", json={**body, "presence_penalty": -3})
    assert refused.status_code == 422 and refused.json()["error"]["param"] == "presence_penalty"


def test_beam_prune_takes_the_logit_bias_and_refuses_penalties_by_name(client, loaded_model):
    """Its steps are sampled with the bias; a penalty would count only one episode's tokens, so it is refused."""
    seven = loaded_model.tokenizer.convert_tokens_to_ids("7")
    body = {"prompt": QUESTION, "n": 2, "max_tokens": 16, "strategy": "beam_prune", "return_candidates": True}
    body |= {"beam": {"episode_tokens": 4, "max_episodes": 1}}
    biased = client.post("/generate", json={**body, "logit_bias": {str(seven): 100}})
    assert biased.status_code == 200, biased.text
    assert all(c["text"].startswith("<episode_1>7777") for c in biased.json()["candidates"])
    for field in ("presence_penalty", "frequency_penalty"):
        response = client.post("/generate", json={**body, field: 1})
        assert response.status_code == 400 and response.json()["error"]["param"] == field
        assert "not supported with strategy 'beam_prune'" in response.json()["error"]["message"]
