"""App fixtures: a runtime around the session's real model, an in-process client, and a live server
on a loopback port (for the openai SDK, streaming and disconnects)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.background import BackgroundServer
from app.core.config import Settings
from app.core.runtime import Runtime
from app.main import create_app


def make_app(loaded_model: Any, **settings: Any) -> FastAPI:
    runtime = Runtime(Settings(**settings))
    runtime.start(loaded_model)
    return create_app(runtime=runtime)


@pytest.fixture(scope="session")
def app(loaded_model: Any) -> FastAPI:
    return make_app(loaded_model, max_queue=32)


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


LiveServer = BackgroundServer


@pytest.fixture(scope="session")
def live_url(app: FastAPI) -> Iterator[str]:
    with LiveServer(app) as server:
        yield server.url


def metric(text: str, name: str) -> float:
    """Sum of all samples of a Prometheus metric (any labels) in an exposition text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head == name or head.startswith(name + "{"):
                total += float(value)
    return total
