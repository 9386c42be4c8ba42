"""The client's types are the server's schema: regenerating them from the OpenAPI document gives exactly
the committed file, and the package imports nothing of the server."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from l2t_client import CandidateOut, EpisodeOut, GenerateResponse, SchemaMismatch

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "clients" / "generate_types.py"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_types", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_types_are_what_the_server_schema_generates() -> None:
    gen = generator()
    fresh = gen.render(gen.server_schema())
    assert fresh == gen.TYPES_PY.read_text(), (
        "clients/l2t_client/types.py is stale: the server's response models changed. "
        "Run `python clients/generate_types.py` and commit the result."
    )


def test_every_response_field_of_the_server_is_a_client_field() -> None:
    """Not only the file's text: the classes the client imports carry every field the schema names."""
    gen = generator()
    schema = gen.server_schema()
    import l2t_client.types as types

    for name in gen.response_models(schema):
        declared = set(schema["components"]["schemas"][name].get("properties", {}))
        assert set(getattr(types, name).__dataclass_fields__) == declared, name


def test_a_schema_form_the_generator_does_not_know_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="teach clients/generate_types.py"):
        generator().annotation({"type": "frobnicate"})


def test_the_client_package_imports_nothing_of_the_server() -> None:
    """clients/pyproject.toml installs httpx only: the package must run without app, l2t_core or pydantic."""
    code = (
        "import sys, l2t_client; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'app', 'l2t_core', 'pydantic', 'fastapi', 'torch'}); "
        "print(','.join(bad))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "clients", capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""


EPISODE = {
    "index": 0,
    "text": "2 + 2 = 4",
    "start": 0,
    "end": 9,
    "token_start": 0,
    "token_end": 7,
    "n_tokens": 7,
    "j_before": 0.1,
    "j_after": 0.9,
    "log_j_before": -2.3,
    "log_j_after": -0.1,
    "fitting_gain": 0.8,
    "compression_penalty": 0.01,
    "reward": 0.79,
    "progress": None,
}


def test_decoding_checks_types_and_tolerates_new_fields_unless_strict() -> None:
    episode = EpisodeOut.from_json({**EPISODE, "j_before": 0})  # JSON's 0 is a valid float
    assert episode.j_before == 0.0 and isinstance(episode.j_before, float)
    assert EpisodeOut.from_json({**EPISODE, "added_later": 1}).reward == 0.79
    with pytest.raises(SchemaMismatch, match="added_later"):
        EpisodeOut.from_json({**EPISODE, "added_later": 1}, strict=True)
    with pytest.raises(SchemaMismatch, match="'token_start' is missing"):
        EpisodeOut.from_json({k: v for k, v in EPISODE.items() if k != "token_start"})
    with pytest.raises(SchemaMismatch, match=r"EpisodeOut.n_tokens: expected int, got '7'"):
        EpisodeOut.from_json({**EPISODE, "n_tokens": "7"})
    with pytest.raises(SchemaMismatch, match="expected int, got True"):
        EpisodeOut.from_json({**EPISODE, "index": True})
    candidate = {
        "index": 0,
        "text": "t",
        "answer": "4",
        "target": "4",
        "score": 1.0,
        "tagged": False,
        "n_tokens": 7,
        "mean_logprob": -0.5,
        "answer_start": 5,
        "episodes": [EPISODE],
    }
    assert CandidateOut.from_json(candidate).episodes[0] == EpisodeOut.from_json(EPISODE)
    with pytest.raises(SchemaMismatch, match=r"GenerateResponse.object: expected one of \('l2t.generation',\)"):
        GenerateResponse.from_json({"id": "g", "object": "other"})
