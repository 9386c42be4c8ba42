"""X-Request-Id: a plausible client id is echoed; anything else is replaced by one of ours."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_a_valid_request_id_is_echoed_and_an_invalid_one_replaced(client: TestClient) -> None:
    assert client.get("/v1/models", headers={"X-Request-Id": "trace-01:a.b_c"}).headers["x-request-id"] == (
        "trace-01:a.b_c"
    )
    for bad in ("x" * 129, "has space", "semi;colon", 'quote"d'):
        echoed = client.get("/v1/models", headers={"X-Request-Id": bad}).headers["x-request-id"]
        assert echoed != bad and echoed.startswith("req-") and len(echoed) <= 128
