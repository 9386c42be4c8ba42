"""Fuzz the OpenAI routes where the per-field limits used to leak: stop lists (count and length around
the bounds) and long prompts (characters that are many tokens each, up to past the character limit).
No case may answer 5xx, a refused case names its field, and none may take long: every cost is bounded
before work starts. Derandomised and a fixed number of cases: bounded and repeatable."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2t_core.engines.base import MAX_STOP_CHARS, MAX_STOP_STRINGS
from tests.app.conftest import make_app

CASES = 20
SLOWEST_S = 60.0  # a served case reads at most 8,000 characters and writes 4 tokens × 2 candidates
PIECES = ["漢字", "a", " 7", "🙂", "</episode_1>", "\n", "The answer is "]


@pytest.fixture(scope="module")
def small(loaded_model: Any) -> Any:
    with TestClient(make_app(loaded_model, max_n=2, max_tokens_limit=4, max_prompt_chars=8_000)) as client:
        yield client


stops = st.lists(st.text(min_size=1, max_size=MAX_STOP_CHARS + 40), max_size=MAX_STOP_STRINGS + 2)
prompts = st.builds(lambda piece, count: piece * count, st.sampled_from(PIECES), st.integers(1, 6_000))


@settings(max_examples=CASES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(stop=stops, prompt=prompts, chat=st.booleans(), n=st.integers(1, 2))
def test_stop_lists_and_long_prompts_never_fail_the_server(
    small: Any, stop: list[str], prompt: str, chat: bool, n: int
) -> None:
    path = "/v1/chat/completions" if chat else "/v1/completions"
    body: dict[str, Any] = {"n": n, "max_tokens": 4, "stop": stop}
    body |= {"messages": [{"role": "user", "content": prompt}]} if chat else {"prompt": prompt}
    started = time.perf_counter()
    response = small.post(path, json=body)
    elapsed = time.perf_counter() - started
    TALLY[response.status_code // 100] += 1
    assert response.status_code < 500, response.text[:300]
    assert elapsed < SLOWEST_S, f"{elapsed:.1f} s for {len(prompt)} characters and {len(stop)} stops"
    if response.status_code == 400:
        assert response.json()["error"]["param"] in ("stop", "prompt", "messages", "max_tokens") or "stop" in str(
            response.json()["error"]["param"]
        )
    too_many = len(stop) > MAX_STOP_STRINGS or any(len(s) > MAX_STOP_CHARS for s in stop)
    if too_many:
        assert response.status_code == 400


TALLY: Counter[int] = Counter()


def test_both_kinds_of_answer_were_seen() -> None:
    """The fuzz above reached the model and the refusals both (run after it, in file order)."""
    assert TALLY[2] > 0 and TALLY[4] > 0, TALLY
