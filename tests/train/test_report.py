"""The training comparison report from run folders: curves PNG, held-back table, smoothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from l2t_core.train.report import main, moving_average, moving_median


def write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def step(n: int, accuracy: float, seconds: float) -> dict:
    return {
        "step": n,
        "accuracy": accuracy,
        "response_tokens": 40 - n,
        "fitting_gain": 0.001,
        "compression_penalty": 0.0,
        "kl": 0.01 * n,
        "rollout_s": seconds,
        "score_s": 1.0,
        "update_s": 2.0,
    }


def held_back(step_: int, greedy: float) -> dict:
    return {
        "step": step_,
        "eval_questions": 200,
        "eval_accuracy": greedy,
        "eval_accuracy_low": greedy - 0.05,
        "eval_accuracy_high": greedy + 0.05,
        "eval_response_tokens": 27.0,
        "eval_episodes": 1.0,
        "eval_maj4_accuracy": 0.5,
        "eval_maj4_accuracy_low": 0.43,
        "eval_maj4_accuracy_high": 0.57,
        "eval_sample_accuracy": 0.4,
        "eval_sample_response_tokens": 33.0,
    }


def test_report_writes_curves_and_held_back_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "outcome" / "metrics.jsonl", [step(1, 0.0, 10.0), step(2, 0.5, 1000.0), step(3, 1.0, 10.0)])
    write(tmp_path / "l2t" / "metrics.jsonl", [step(1, 0.0, 10.0), step(2, 0.25, 10.0)])
    write(tmp_path / "l2t" / "held_back.jsonl", [held_back(2, 0.62)])
    write(tmp_path / "initial" / "held_back.jsonl", [held_back(0, 0.605)])
    out = tmp_path / "report" / "training"
    assert (
        main(
            [
                str(tmp_path / "outcome"),
                str(tmp_path / "l2t"),
                "--baseline",
                str(tmp_path / "initial"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = out.with_suffix(".md").read_text()
    assert "Steps logged: outcome: 3, l2t: 2." in text
    row = "| initial | 0 | — | 200 | 60.5 [55.5, 65.5] | 27.0 | 1.00 | 50.0 [43.0, 57.0] | 40.0 | 33.0 |"
    assert row in text
    assert "| l2t | 2 | — | 200 | 62.0 [57.0, 67.0] |" in text  # records before engines were named
    main([str(tmp_path / "outcome"), "--max-step", "2", "--out", str(out)])
    assert "Steps logged: outcome: 2." in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").stat().st_size > 10_000
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nothing"), "--out", str(out)])
    assert "no metrics.jsonl in: nothing" in capsys.readouterr().err


def test_paired_differences_against_the_baseline_and_a_run(tmp_path: Path) -> None:
    old = held_back(0, 0.5)  # an evaluation from before per-question results were kept: never paired
    base = held_back(0, 0.5) | {"eval_correct": [1, 0, 1, 0], "eval_maj4_correct": [1, 1, 0, 0]}
    base |= {"eval_tokens_each": [20, 20, 20, 20], "eval_sample_tokens_each": [30, 30, 30, 30]}
    trained = held_back(50, 0.75) | {"eval_correct": [1, 1, 1, 0], "eval_maj4_correct": [1, 1, 0, 0]}
    trained |= {"eval_tokens_each": [20, 20, 20, 20], "eval_sample_tokens_each": [26, 26, 26, 26]}
    outcome = held_back(50, 0.5) | {"eval_correct": [1, 0, 1, 1], "eval_maj4_correct": [1, 1, 1, 0]}
    outcome |= {"eval_tokens_each": [22, 22, 22, 22], "eval_sample_tokens_each": [28, 28, 28, 28]}
    write(tmp_path / "initial" / "held_back.jsonl", [base, old])
    for name, record in (("l2t", trained), ("outcome", outcome)):
        write(tmp_path / name / "metrics.jsonl", [step(1, 0.0, 10.0)])
        write(tmp_path / name / "held_back.jsonl", [record])
    out = tmp_path / "training"
    runs = [str(tmp_path / "l2t"), str(tmp_path / "outcome")]
    main([*runs, "--baseline", str(tmp_path / "initial"), "--versus", "outcome", "--out", str(out)])
    text = out.with_suffix(".md").read_text()
    against_initial, against_outcome = text.split("Paired differences against")[1:]
    row = next(line for line in against_initial.splitlines() if line.startswith("| l2t | 50 |"))
    assert row.startswith("| l2t | 50 | +25.0 [+0.0, ")  # the bootstrap's upper end depends on its draws
    assert row.endswith("| +0.0 [+0.0, +0.0] | +0.0 [+0.0, +0.0] | -4.0 [-4.0, -4.0] |")
    assert against_outcome.startswith(" outcome at the same step")
    row = next(line for line in against_outcome.splitlines() if line.startswith("| l2t | 50 |"))
    assert "| -2.0 [-2.0, -2.0] | -2.0 [-2.0, -2.0] |" in row  # shorter than outcome, greedy and sampled
    assert "| outcome |" not in against_outcome


def test_smoothing() -> None:
    assert moving_average([0.0, 1.0, 1.0, 0.0], 2) == [0.0, 0.5, 1.0, 0.5]
    assert moving_median([10.0, 1000.0, 10.0, 10.0], 3) == [10.0, 505.0, 10.0, 10.0]
