"""The evaluation harness end to end on the real model (tiny sizes), its cache, and its input errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from l2t_core.episodes import DEFAULT_PROMPT_FORMAT
from tests.conftest import DATA_DIR, cli_in_process


def run_eval(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "L2T_DATA_DIR": str(DATA_DIR)}
    command = [sys.executable, "-m", "l2t_core.eval", "--cache-dir", str(cache), "--no-progress", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.extended  # `l2t eval` end to end in subprocesses (~45 s): CI's extended stage
def test_tiny_run_writes_results_and_reuses_its_cache(tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = [
        "--data", "arithmetic", "verifier", "--limit", "2", "--n", "4", "--max-tokens", "16",
        "--beam-budgets", "56", "--beam-width", "2", "--episode-tokens", "16", "--out", str(out),
    ]  # fmt: skip
    first = run_eval(*args, cache=cache)
    assert first.returncode == 0, first.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == {"results.json", "results.md", "accuracy_vs_tokens.png"}
    results = json.loads((out / "results.json").read_text())
    arithmetic = results["suites"]["arithmetic"]
    assert set(arithmetic["methods"]) == {
        "first", "majority", "loglik", "confidence", "best_of_n", "weighted_vote", "posterior_vote", "adaptive",
        "oracle",
    }  # fmt: skip
    adaptive = arithmetic["methods"]["adaptive"]["2"]
    assert 1 <= adaptive["samples"] <= 2 and adaptive["tokens"] <= arithmetic["methods"]["majority"]["2"]["tokens"]
    assert arithmetic["posterior_tuning"] and arithmetic["adaptive_tuning"]
    at_compare = {
        m: arithmetic["methods"][m][str(arithmetic["compare_n"])]["accuracy"]["mean"] for m in ("majority", "loglik")
    }
    for row in arithmetic["posterior_tuning"] + arithmetic["adaptive_tuning"]:  # grid rows paired with both bars
        for method, accuracy in at_compare.items():
            assert row[f"minus_{method}"]["mean"] == pytest.approx(row["accuracy"]["mean"] - accuracy)
    assert results["settings"]["prompt_format"] == DEFAULT_PROMPT_FORMAT and results["command"].startswith("l2t eval ")
    for by_n in arithmetic["methods"].values():
        assert set(by_n) == {"1", "2", "4"}
        for summary in by_n.values():
            low, high = summary["accuracy"]["ci95"]
            assert 0.0 <= low <= summary["accuracy"]["mean"] <= high <= 1.0
    oracle, first_method = arithmetic["methods"]["oracle"]["4"], arithmetic["methods"]["first"]["4"]
    assert oracle["accuracy"]["mean"] >= first_method["accuracy"]["mean"]  # pass@N bounds every reranker
    assert first_method["tokens"] < oracle["tokens"]  # `first` pays for one sample, the others for N
    beam = arithmetic["beam_prune"]["56"]
    assert beam["tokens"] <= 56
    # width 2 is compared with majority@2 and, paired, with the whole pool's majority@4
    assert beam["best_of_n"]["n"] == 2 and beam["against_full_pool"]["n"] == 4
    majority4 = arithmetic["methods"]["majority"]["4"]
    assert beam["against_full_pool"]["token_ratio"] == pytest.approx(beam["tokens"] / majority4["tokens"])
    verifier = results["suites"]["verifier"]
    assert verifier["pools"] >= 1 and {"loglik", "majority", "posterior_vote"} <= set(verifier["top1"])
    report = (out / "results.md").read_text()
    assert "| weighted_vote |" in report and "Reproduce" in report and "--beam-budgets 56" in report
    assert "Budget 56 against majority@4 (paired)" in report
    assert "--cache-dir" not in results["command"] and "--no-progress" not in report
    kept = arithmetic["per_problem"]
    assert len(kept["ids"]) == arithmetic["problems"] == len(beam["per_problem"]["correct"])
    majority4_mean = arithmetic["methods"]["majority"]["4"]["accuracy"]["mean"]
    assert sum(kept["correct"]["majority"]) / len(kept["ids"]) == pytest.approx(majority4_mean)

    pools_before = sorted(p.name for p in (cache / "pools").rglob("*.json"))
    second = run_eval(*args, cache=cache)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads((out / "results.json").read_text())
    assert sorted(p.name for p in (cache / "pools").rglob("*.json")) == pools_before
    # cached pools, scores and searches: the same numbers, not a redraw
    assert again["suites"]["arithmetic"]["methods"] == arithmetic["methods"]
    assert again["suites"]["arithmetic"]["beam_prune"] == arithmetic["beam_prune"]


def test_bad_input_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bad input is refused with exit code 2 and a message, never a traceback. The checks run in
    process (an uncaught exception fails the test, as a traceback would); one runs as a real command."""
    command = run_eval("--data", "nonsense", "--out", str(tmp_path / "out"), cache=tmp_path / "cache")
    assert command.returncode == 2 and "unknown suite" in command.stderr and "Traceback" not in command.stderr
    bad_rows = tmp_path / "bad.jsonl"
    bad_rows.write_text('{"question": "no answer field"}\n')
    cases = [
        (["--data", "nonsense"], "unknown suite"),
        (["--data", str(tmp_path / "missing.jsonl")], "not found"),
        (["--data", "arithmetic", "--methods", "first,telepathy"], "unknown strategy"),
        (["--data", "arithmetic", "--methods", "beam_prune"], "--beam-budgets"),
        (["--data", "arithmetic", "--prompt-format", "fancy"], "invalid choice"),
        (["--data", "arithmetic", "--beam-budgets", "20"], "beam budget"),
        (["--data", "arithmetic", "--n", "4", "--beam-width", "8"], "--beam-width"),
        (["--data", str(bad_rows)], "bad.jsonl:1"),
    ]
    monkeypatch.setenv("L2T_DATA_DIR", str(DATA_DIR))
    for args, message in cases:
        argv = ["eval", "--cache-dir", str(tmp_path / "cache"), "--no-progress", *args, "--out", str(tmp_path / "out")]
        code, _, stderr = cli_in_process(argv, capsys)
        assert code == 2, (args, stderr[-2000:])
        assert message in stderr, (args, stderr[-2000:])


def test_scores_are_cached_per_scorer_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two scorer models on the same (cached) pool: each one's scores are cached under its own key, so a run
    with another scorer never reads the first one's numbers."""
    from l2t_core.cli import main
    from tests.fakes import tiny_model_folder

    monkeypatch.setenv("L2T_DATA_DIR", str(DATA_DIR))
    cache, out = tmp_path / "cache", tmp_path / "out"
    scorers = [tiny_model_folder(tmp_path / f"scorer-{seed}", seed=seed) for seed in (0, 1)]
    cached: list[dict[str, list[float]]] = []
    for scorer in scorers:
        args = ["eval", "--data", "arithmetic", "--limit", "1", "--n", "2", "--beam-width", "2", "--max-tokens", "8"]
        args += ["--device", "cpu", "--scorer-model", str(scorer), "--out", str(out), "--cache-dir", str(cache)]
        assert main([*args, "--no-progress"]) == 0
        assert json.loads((out / "results.json").read_text())["settings"]["scorer_model_name"] == str(scorer)
        assert f"model `default`, scored by `{scorer}` on cpu" in (out / "results.md").read_text()
        cached.append(
            {
                path.parent.name: [s["mean_logprob"] for s in json.loads(path.read_text())["scores"]]
                for path in (cache / "scores").rglob("*.json")
            }
        )
    assert len(list((cache / "pools").rglob("*.json"))) == 1  # one pool, sampled once by the generator
    assert len(cached[0]) == 1 and len(cached[1]) == 2  # scored once per scorer, each under its own key
    (first,) = cached[0].values()
    (second,) = (values for key, values in cached[1].items() if key not in cached[0])
    assert second != first


def test_reward_settings_added_later_key_caches_only_away_from_their_default() -> None:
    """Pools scored and searches run before a reward setting existed keep their cache keys: the setting
    joins a key only when it is away from its default, for score and beam caches alike."""
    from dataclasses import asdict, fields

    from l2t_core.eval.pool import LATER_SETTINGS, MEASURED_SETTINGS, reward_cache_key
    from l2t_core.reward import RewardConfig

    default, string = RewardConfig(), RewardConfig(suffix_probability="string")
    assert {f.name for f in fields(RewardConfig)} >= set(LATER_SETTINGS)
    assert all(getattr(default, name) == value for name, value in LATER_SETTINGS.items())
    before = {name: value for name, value in asdict(default).items() if name not in LATER_SETTINGS}
    assert reward_cache_key(default, asdict(default)) == before  # the beam key of a search run before
    assert reward_cache_key(string, asdict(string)) == {**before, "suffix_probability": "string"}
    assert reward_cache_key(default, MEASURED_SETTINGS) == {n: getattr(default, n) for n in MEASURED_SETTINGS}
    assert reward_cache_key(string, MEASURED_SETTINGS)["suffix_probability"] == "string"


def test_the_reproduce_line_leaves_out_machine_local_options() -> None:
    from l2t_core.eval.command import reproduce_command

    argv = [
        "--data",
        "arithmetic",
        "--cache-dir",
        "/tmp/c",
        "--n",
        "8",
        "--no-progress",
        "--cache-dir=/x",
        "--out",
        "o",
    ]
    assert reproduce_command(argv) == "l2t eval --data arithmetic --n 8 --out o"


def _results(ids: list[str], majority: list[float], beam: list[float]) -> dict[str, object]:
    per_problem = {"ids": ids, "correct": {"majority": majority}}
    beam_row = {"240": {"per_problem": {"ids": ids, "correct": beam}}}
    return {"suites": {"arithmetic": {"per_problem": per_problem, "beam_prune": beam_row}}}


def test_two_runs_are_paired_by_problem_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`l2t pair` matches two runs' rows problem by problem (not by position) over the problems both have."""
    from l2t_core.eval.paired import pair_rows, per_problem

    first = _results(["a", "b", "c", "d"], [1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0])
    second = _results(["d", "c", "b", "x"], [1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0])
    paired = pair_rows(
        per_problem(first, "arithmetic", "beam_prune@240"), per_problem(second, "arithmetic", "majority")
    )
    # shared b, c, d: beam 1, 1, 0 against majority 0, 1, 1
    assert paired.difference.n == 3 and paired.difference.mean == pytest.approx(0.0)
    assert paired.first.mean == pytest.approx(2 / 3) and paired.second.mean == pytest.approx(2 / 3)
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "results.json").write_text(json.dumps(first))
    (tmp_path / "two.json").write_text(json.dumps(second))
    code, out, _ = cli_in_process(
        ["pair", str(tmp_path / "one"), str(tmp_path / "two.json"), "--row", "majority"], capsys
    )
    assert code == 0 and "difference: -33.3" in out and "over 3 shared problems" in out
    # a jsonl run's suite is named by the file; the second run's suite is named apart
    (tmp_path / "three.json").write_text(json.dumps({"suites": {"problems": first["suites"]["arithmetic"]}}))
    argv = ["pair", str(tmp_path / "three.json"), str(tmp_path / "two.json"), "--row", "beam_prune@240"]
    code, out, _ = cli_in_process(
        [*argv, "--suite", "problems", "--against-suite", "arithmetic", "--against", "majority"], capsys
    )
    assert code == 0 and "difference: +0.0" in out
    for args, message in [
        (["--row", "loglik"], "no per-problem outcomes for 'loglik'"),
        (["--row", "majority", "--suite", "gsm8k"], "no suite 'gsm8k'"),
    ]:
        code, _, err = cli_in_process(["pair", str(tmp_path / "one"), str(tmp_path / "two.json"), *args], capsys)
        assert code == 2 and message in err
    code, _, err = cli_in_process(
        ["pair", str(tmp_path / "none"), str(tmp_path / "two.json"), "--row", "majority"], capsys
    )
    assert code == 2 and "cannot read evaluation results" in err
