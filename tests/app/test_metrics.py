"""/metrics: the serving series dashboards read (time to first token, end-to-end latency, prompt and
generation tokens, labelled by model) and the l2t-specific ones, moved by real requests."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.app.conftest import metric


def test_requests_move_the_serving_series(client: TestClient) -> None:
    before = client.get("/metrics").text
    generated = client.post("/generate", json={"prompt": "What is 2 + 3?", "n": 2, "max_tokens": 16}).json()
    stream = {"prompt": "2 + 3 =", "max_tokens": 4, "stream": True}
    with client.stream("POST", "/v1/completions", json=stream) as response:
        assert response.status_code == 200 and "[DONE]" in response.read().decode()
    after = client.get("/metrics").text
    assert 'l2t:e2e_request_latency_seconds_count{model_name="default"}' in after
    for name in ("l2t:prompt_tokens_total", "l2t:generation_tokens_total", "l2t:e2e_request_latency_seconds_count"):
        assert metric(after, name) > metric(before, name), name
    grown = metric(after, "l2t:prompt_tokens_total") - metric(before, "l2t:prompt_tokens_total")
    assert grown >= generated["usage"]["prompt_tokens"]
    assert (
        metric(after, "l2t:time_to_first_token_seconds_count")
        == metric(before, "l2t:time_to_first_token_seconds_count") + 1
    )
    assert metric(after, "l2t_episodes_per_candidate_count") >= metric(before, "l2t_episodes_per_candidate_count") + 3
    agreement = metric(after, "l2t_chosen_answer_is_first_total") - metric(before, "l2t_chosen_answer_is_first_total")
    assert agreement == 2  # one per generation request: /generate and the streamed completion
