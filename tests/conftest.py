"""Shared fixtures: the real embedded SmolLM2 model (loaded once per session) and the shared data sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def read_jsonl(name: str) -> list[dict[str, Any]]:
    path = DATA_DIR / name
    if not path.exists():
        pytest.fail(f"shared data file {path} is missing (the repo expects ../shared/data beside it)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def gsm8k() -> list[dict[str, Any]]:
    return read_jsonl("gsm8k_test.jsonl")


@pytest.fixture(scope="session")
def math500() -> list[dict[str, Any]]:
    return read_jsonl("math500.jsonl")


@pytest.fixture(scope="session")
def loaded_model() -> Any:
    from l2t_core.models import load_model

    return load_model("default", device="cpu", dtype="float32")
