"""Shared fixtures: the real embedded SmolLM2 model (loaded once per session), a tiny random model folder
for tests whose subject is not the model, and the shared data sets."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# The shared data sets (beside the checkout unless L2T_DATA_DIR names them), exported so that the library's
# own data lookups (suite names, the trainer's default data) read the same folder from any working directory.
DATA_DIR = Path(os.environ.get("L2T_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
os.environ["L2T_DATA_DIR"] = str(DATA_DIR)


def cli_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`l2t ARGV` through the CLI's own `main`, argparse's exits included: (exit code, stdout, stderr).
    For what needs no separate process (input errors, output formats): an uncaught exception fails the
    test, as a traceback in a real command's stderr would."""
    from l2t_core.cli import main

    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_jsonl(name: str) -> list[dict[str, Any]]:
    path = DATA_DIR / name
    if not path.exists():
        pytest.fail(f"shared data file {path} is missing (set L2T_DATA_DIR, or keep ../shared/data beside the repo)")
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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder (`tests.fakes.tiny_model_folder`: its own tokenizer and chat template, a 2-layer random
    Llama) that `load_model`, `--model` and the trainer take like any other: for trainer mechanics, CLI
    handling and pipeline logic, which run the same code on it as on SmolLM2 in a fraction of the time.
    Made once per session; tests read it and never write into it."""
    from tests.fakes import tiny_model_folder

    return tiny_model_folder(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def scorer_model(tiny_model_dir: Path) -> Any:
    """A second, separately loaded model (tiny, random, its own tokenizer and chat template) to score with."""
    from l2t_core.models import load_model

    return load_model(str(tiny_model_dir), device="cpu")
