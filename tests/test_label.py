"""`l2t label`: TRL stepwise-supervision rows from ΔI_k, sampled by the pipeline or from given completions,
on the tiny model (the labels' logic and format, not their values), loaded back with `datasets`."""

from __future__ import annotations

import json

import pytest

from l2t_core.episodes import episode_body, prompt_format
from l2t_core.models import load_model
from l2t_core.reward import RewardConfig
from l2t_core.scoring import L2TScorer
from tests.conftest import cli_in_process

GIVEN = [
    "<episode_1>3 + 4 = 7</episode_1>\n<episode_2>so 7</episode_2>\nThe final answer is \\boxed{7}.",
    "<episode_1>3 plus 4</episode_1>\nThe final answer is \\boxed{8}.",
    "no episodes and no answer",  # the fallback split still makes it one step
]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_given_completions_are_labelled_by_delta_i_against_the_reference(tmp_path, tiny_model_dir, capsys):
    data = write_rows(
        tmp_path / "qa.jsonl", [{"id": "q1", "question": "What is 3 + 4?", "answer": "7", "completions": GIVEN}]
    )
    out = tmp_path / "labels.jsonl"
    model = ["--model", str(tiny_model_dir), "--device", "cpu"]
    code, _, err = cli_in_process(["label", "--data", str(data), "-o", str(out), *model], capsys)
    assert code == 0, err
    rows = read_rows(out)
    # what the scorer says of the same completions, measured against the reference
    loaded = load_model(str(tiny_model_dir), device="cpu")
    scorer = L2TScorer(loaded.model, loaded.tokenizer, RewardConfig())
    prompt = prompt_format("worked").render(loaded.tokenizer, "What is 3 + 4?").text
    scores = [s for s in scorer.score(prompt, GIVEN, reference="7") if s.episodes]
    assert len(rows) == len(scores)
    for row, score in zip(rows, scores, strict=True):
        assert list(row)[:3] == ["prompt", "completions", "labels"]
        assert row["prompt"] == "What is 3 + 4?" and row["id"] == "q1" and row["reference"] == "7"
        assert row["completions"] == [episode_body(e.text) for e in score.episodes]
        assert row["delta_i"] == pytest.approx([e.fitting_gain for e in score.episodes], rel=1e-5, abs=1e-12)
        assert row["labels"] == [e.fitting_gain > 0 for e in score.episodes]
        assert all(isinstance(label, bool) for label in row["labels"])
    assert rows[0]["completions"] == ["3 + 4 = 7", "so 7"] and rows[0]["correct"] is True
    assert rows[1]["correct"] is False
    assert "wrote 3 rows" in err and not (tmp_path / "labels.jsonl.partial").exists()
    # a threshold above every gain labels every step bad
    high = max(abs(g) for row in rows for g in row["delta_i"]) + 1.0
    code, _, err = cli_in_process(
        ["label", "--data", str(data), "-o", str(out), "--threshold", str(high), *model], capsys
    )
    assert code == 0, err
    assert not any(label for row in read_rows(out) for label in row["labels"])


def test_sampled_completions_make_rows_that_datasets_loads_as_stepwise_supervision(tmp_path, tiny_model_dir, capsys):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "labels.jsonl"
    argv = ["label", "--data", "arithmetic", "--limit", "2", "-n", "2", "--max-tokens", "24", "--seed", "1"]
    code, _, err = cli_in_process([*argv, "-o", str(out), "--model", str(tiny_model_dir), "--device", "cpu"], capsys)
    assert code == 0, err
    assert "labelling" in err  # the progress bar is on stderr
    rows = read_rows(out)
    assert rows and all(len(r["completions"]) == len(r["labels"]) >= 1 for r in rows)
    loaded = datasets.load_dataset("json", data_files=str(out), split="train")
    assert loaded.features["prompt"].dtype == "string"
    assert loaded.features["completions"].feature.dtype == "string"
    assert loaded.features["labels"].feature.dtype == "bool"
    assert len(loaded) == len(rows)


def test_label_input_errors_are_one_line(tmp_path, tiny_model_dir, capsys):
    model = ["--model", str(tiny_model_dir), "--device", "cpu"]
    out = str(tmp_path / "labels.jsonl")
    mixed = write_rows(
        tmp_path / "mixed.jsonl",
        [{"question": "a?", "answer": "1", "completions": ["x"]}, {"question": "b?", "answer": "2"}],
    )
    cases = [
        (["--data", str(mixed), "-o", out], "some rows have 'completions'"),
        (["--data", str(tmp_path / "none.jsonl"), "-o", out], "not found"),
        (["--data", "arithmetic", "-o", str(tmp_path / "no" / "such" / "x.jsonl")], "does not exist"),
        (["--data", "arithmetic", "-o", out, "--threshold", "nan"], "finite"),
        (["--data", "arithmetic", "-o", out, "-n", "0"], "-n must be"),
    ]
    for argv, message in cases:
        code, _, err = cli_in_process(["label", *argv, *model], capsys)
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)
