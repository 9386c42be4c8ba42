"""Bad input gets a 4xx in one envelope with a bounded echo; auth, limits, readiness."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.runtime import Runtime
from app.main import create_app
from tests.app.conftest import make_app


def envelope(response):
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/generate", {}, 422, "exactly one of 'prompt' or 'messages'"),
        ("/generate", {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, 422, "exactly one"),
        ("/generate", {"prompt": "   "}, 422, "'prompt' is empty"),
        ("/generate", {"prompt": "a", "n": 0}, 422, "n:"),
        ("/generate", {"prompt": "a", "n": 65}, 422, "n:"),
        ("/generate", {"prompt": "a", "strategy": "beam_search"}, 422, "strategy"),
        ("/generate", {"prompt": "a", "target": "oracle"}, 422, "target"),
        ("/generate", {"prompt": "a", "temperature": -1}, 422, "temperature"),
        ("/generate", {"prompt": "a", "max_tokens": 100000}, 400, "max_tokens=100000 exceeds"),
        ("/generate", {"prompt": "a", "bogus_field": 1}, 422, "bogus_field"),
        ("/generate", {"prompt": "x" * 40000}, 400, "prompt is"),
        ("/score", {"question": "q", "completions": []}, 422, "completions"),
        ("/score", {"question": "q", "completions": ["a"] * 65}, 422, "completions"),
        ("/score", {"completions": ["a"]}, 422, "exactly one of 'question' or 'messages'"),
        ("/v1/chat/completions", {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, 404, "gpt-9"),
        ("/v1/chat/completions", {"messages": []}, 400, "messages"),  # OpenAI routes: 400, as OpenAI
        ("/v1/completions", {"prompt": ""}, 400, "prompt"),
    ],
)
def test_bad_requests(client, path, body, status, fragment):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    error = envelope(response)
    assert fragment in error["message"]
    assert len(error["message"]) < 600  # the echo of bad input is bounded


def test_malformed_json_and_large_body(client):
    response = client.post("/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and envelope(response)["type"] == "invalid_request_error"
    assert envelope(response)["message"].startswith("the request body is not valid JSON")
    huge = client.post("/score", content=b"x" * 3_000_000, headers={"content-type": "application/json"})
    assert huge.status_code == 413 and envelope(huge)["code"] == "body_too_large"


def test_unknown_route_uses_the_envelope(client):
    response = client.get("/nope")
    assert response.status_code == 404 and envelope(response)["type"] == "not_found_error"


def test_bearer_key(loaded_model):
    with TestClient(make_app(loaded_model, api_key="s3cret")) as locked:
        health = locked.get("/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}  # no model paths without the key
        keyed = locked.get("/health", headers={"Authorization": "Bearer s3cret"}).json()
        assert keyed["status"] == "ok" and keyed["model"] == "default"
        denied = locked.get("/v1/models")
        assert denied.status_code == 401 and envelope(denied)["type"] == "authentication_error"
        assert locked.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_load_error_is_shown_only_with_the_key_when_one_is_set():
    runtime = Runtime(Settings(model="/no/such/model", api_key="s3cret"))
    runtime.load()
    with TestClient(create_app(runtime=runtime)) as c:
        assert c.get("/health").json() == {"status": "unavailable"}
        keyed = c.get("/health", headers={"Authorization": "Bearer s3cret"})
        assert keyed.status_code == 503 and "does not exist" in keyed.json()["reason"]


def test_not_ready_until_loaded():
    runtime = Runtime(Settings(model="/no/such/model"))
    runtime.load()  # fails: the server stays up and says why
    with TestClient(create_app(runtime=runtime)) as c:
        health = c.get("/health")
        assert health.status_code == 503 and "does not exist" in health.json()["reason"]
        response = c.post("/generate", json={"prompt": "hi"})
        assert response.status_code == 503 and envelope(response)["code"] == "not_ready"
        assert "retry-after" in response.headers


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("L2T_SUFFIX_PROBABILITY", "bytes", "suffix_probability must be one of token, string"),
        ("L2T_STRATEGY", "oracle", "needs the gold answer"),
        ("L2T_PROMPT_FORMAT", "fancy", "fancy"),
    ],
)
def test_a_bad_server_default_is_refused_by_name(monkeypatch, variable, value, fragment):
    """Server defaults read from the environment are checked against the same registries as requests."""
    from pydantic import ValidationError

    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=fragment):
        Settings()


def test_system_routes(client):
    assert client.get("/health").json()["status"] == "ok"
    models = client.get("/v1/models").json()
    assert models["data"][0]["id"] == "default"
    text = client.get("/metrics").text
    for name in (
        "l2t_requests_total",
        "l2t_request_latency_seconds",
        "l2t_generated_tokens_total",
        "l2t_scored_tokens_total",
        "l2t_queue_depth",
    ):
        assert name in text


def test_dead_engine_turns_health_red(loaded_model):
    app = make_app(loaded_model)
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        app.state.runtime.pipeline.close()
        deadline = time.monotonic() + 10
        while c.get("/health").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/health").status_code == 503
        response = c.post("/generate", json={"prompt": "hi"})
        assert response.status_code == 503 and envelope(response)["code"] == "engine_dead"


def test_request_timeout_gives_504_and_frees_the_slot(loaded_model):
    app = make_app(loaded_model, request_timeout_s=1)
    with TestClient(app) as c:
        response = c.post("/generate", json={"prompt": "Tell a long story.", "n": 2, "max_tokens": 2000})
        assert response.status_code == 504 and envelope(response)["code"] == "timeout"
        deadline = time.monotonic() + 30
        while app.state.runtime.metrics.queue_depth._value.get() > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert app.state.runtime.metrics.queue_depth._value.get() == 0  # generation was cancelled, not left running
