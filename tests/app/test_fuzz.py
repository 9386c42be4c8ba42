"""Fuzz the whole HTTP API from its own OpenAPI schema (schemathesis): no input may make the server
answer 5xx, and every answer must match the schema (status codes, content types, bodies, headers).

Runs in-process against the real app on the embedded model, with small limits (n ≤ 2, max_tokens ≤
16) so that a valid request costs well under a second. Schema-valid (positive) and schema-invalid
(negative) cases for every operation, a fixed derandomised number of each: bounded and repeatable."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from schemathesis import GenerationMode

from l2t_core.engines.base import SEED_MAX, SEED_MIN
from tests.app.conftest import make_app

# Cases per mode; L2T_FUZZ_SCALE multiplies them for a longer run (the CI default costs about a minute
# on a quiet 2-core machine: valid cases run the model, invalid ones are refused at the edge).
SCALE = float(os.environ.get("L2T_FUZZ_SCALE", "1"))
CASES = {GenerationMode.POSITIVE: int(25 * SCALE), GenerationMode.NEGATIVE: int(50 * SCALE)}


@pytest.fixture()
def fuzz_schema(loaded_model: Any) -> Any:
    """A fresh app per test: schemathesis' pytest plugin ends an ASGI app's lifespan (which closes our
    runtime) when the test that started it tears down, so an app shared by two tests is closed for the second."""
    app = make_app(loaded_model, max_n=2, max_tokens_limit=16, max_queue=4)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", list(CASES), ids=lambda mode: mode.value)
def test_no_input_gives_a_server_error(fuzz_schema: Any, mode: GenerationMode) -> None:
    tally: Counter[str] = Counter()

    @given(case=fuzz_schema.as_strategy(generation_mode=mode))
    @settings(
        max_examples=CASES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        if mode is GenerationMode.POSITIVE:
            assume(not _over_candidate_limit(case) and not _seed_out_of_range(case))
            assume(not _breaks_a_rule_between_fields(case))
        response = case.call(timeout=120)
        tally["cases"] += 1
        tally[f"{response.status_code // 100}xx"] += 1
        assert response.status_code < 500, f"{case.method} {case.path} {case.body!r}: {response.text[:300]}"
        case.validate_response(response)

    check()
    print(f"fuzz ({mode.value}): {dict(tally)}")
    assert tally["cases"] > 0 and tally["5xx"] == 0


def _seed_out_of_range(case: Any) -> bool:
    """Schemathesis checks integer bounds in floating point, where 2**63 - 1 and 2**63 are the same
    number: it can call a seed of 9223372036854776000 schema-valid, and the server rightly refuses it
    (the exact bound is tested in test_hardening). Such cases are not valid, so they are left out."""
    body = case.body if isinstance(case.body, dict) else {}
    seed = body.get("seed")
    return isinstance(seed, int) and not isinstance(seed, bool) and not SEED_MIN <= seed <= SEED_MAX


def _over_candidate_limit(case: Any) -> bool:
    """The one rule JSON Schema cannot state: a list of prompts × n (or best_of) within L2T_MAX_N (tested in
    test_openai_conventions); schema-valid cases that break it are left out of the positive run."""
    body = case.body if isinstance(case.body, dict) else {}
    prompts = body.get("prompt")
    sampled = body.get("best_of") or body.get("n", 1)
    return case.path == "/v1/completions" and isinstance(prompts, list) and len(prompts) * sampled > 2


def _breaks_a_rule_between_fields(case: Any) -> bool:
    """Rules JSON Schema cannot state, each tested where it is enforced: `best_of` at least `n` and not
    streamed above it, logit-bias token ids within the vocabulary and each named once
    (test_openai_conventions), and token ids within the vocabulary (test_tokenization; for token-id
    prompts test_one_tokenization)."""
    body = case.body if isinstance(case.body, dict) else {}
    if case.path == "/detokenize":
        tokens = body.get("tokens")
        if not isinstance(tokens, list):
            return False
        # 13588092.0 is an integer to JSON Schema (and to the server)
        return any(isinstance(t, int | float) and not isinstance(t, bool) and t >= VOCABULARY for t in tokens)
    if case.path == "/v1/completions" and any(t >= VOCABULARY for t in _token_ids(body.get("prompt"))):
        return True  # a token-id prompt outside the vocabulary (tests/app/test_one_tokenization.py)
    bias = body.get("logit_bias")
    if isinstance(bias, dict) and all(str(t).isdigit() for t in bias):
        ids = [int(t) for t in bias]
        if any(t >= VOCABULARY for t in ids) or len(set(ids)) < len(ids):  # "7" and "07" are one token
            return True
    best_of, n = body.get("best_of"), body.get("n", 1)
    if case.path != "/v1/completions" or not isinstance(best_of, int) or not isinstance(n, int):
        return False
    return best_of < n or (best_of > n and body.get("stream") is True)


VOCABULARY = 49152  # the embedded SmolLM2's


def _token_ids(prompt: Any) -> list[float]:
    """The numbers of a token-id prompt (a list of ids, or a list of such lists); none for a text prompt."""
    if isinstance(prompt, list):
        return [n for item in prompt for n in _token_ids(item)]
    return [prompt] if isinstance(prompt, int | float) and not isinstance(prompt, bool) else []
