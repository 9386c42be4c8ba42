"""`l2t label`: a step-labelled data set from the L2T signal, in TRL's stepwise-supervision format, to
train a process reward model (TRL's PRMTrainer) on.

Each completion of a question becomes one row: {"prompt": the question, "completions": its episodes'
texts without their tags (the steps), "labels": one bool per step}. A step is good when its fitting
gain ΔI_k = J_k − J_{k−1} exceeds `--threshold` (default 0): it raised the model's probability of the
reference answer. ΔI_k does not depend on β, so the labels do not either. Rows also carry the question's
id, the reference, the completion's answer and whether it is right, and ΔI_k itself (PRMTrainer drops
the columns it does not use).

Completions are sampled with the pipeline (N per question) unless the jsonl rows carry their own
("completions": [reply, ...]); J is measured against each row's reference answer. A completion whose
text yields no episode gives no row.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from l2t_core.config_flags import (
    SAMPLING_FLAGS,
    add_dataclass_flags,
    add_prompt_format,
    add_sampling_flags,
    flag_values,
)
from l2t_core.eval.problems import DataError
from l2t_core.eval.suites import SUITES
from l2t_core.reward import RewardConfig
from l2t_core.scoring import CandidateScore

LABEL_REWARD_FLAGS = ("suffix_probability",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, help=f"a data set ({', '.join(SUITES)}) or a .jsonl of question/answer rows"
    )
    parser.add_argument("--output", "-o", required=True, type=Path, help="the .jsonl the labelled rows go to")
    parser.add_argument("--limit", type=int, default=None, help="the first N questions (arithmetic: how many)")
    parser.add_argument("-n", type=int, default=4, help="completions sampled per question (default 4)")
    parser.add_argument(
        "--threshold", type=float, default=0.0, help="a step is labelled good when its ΔI_k exceeds this (default 0)"
    )
    add_sampling_flags(parser, (*SAMPLING_FLAGS, "seed"))
    # J's suffix is the one reward setting ΔI_k depends on: β, the aggregation and C_k do not enter the
    # labels, and the target is each row's reference
    add_dataclass_flags(parser, RewardConfig, LABEL_REWARD_FLAGS)
    add_prompt_format(parser)
    parser.add_argument("--model", default="default", help="'default' (SmolLM2), a folder or a cached HF id")
    parser.add_argument("--device", default="auto")


def step_labels(score: CandidateScore, threshold: float) -> list[bool]:
    """Good (True) for each episode whose ΔI_k exceeds `threshold`."""
    return [e.fitting_gain > threshold for e in score.episodes]


def label_row(problem_id: str, question: str, reference: str, score: CandidateScore, threshold: float) -> dict:
    """One stepwise-supervision row: TRL's three fields first, then what the labels came from."""
    from l2t_core.answers import answers_match
    from l2t_core.episodes import episode_body

    return {
        "prompt": question,
        "completions": [episode_body(e.text) for e in score.episodes],
        "labels": step_labels(score, threshold),
        "id": problem_id,
        "reference": reference,
        "answer": score.answer,
        "correct": answers_match(score.answer, reference),
        "delta_i": [e.fitting_gain for e in score.episodes],
    }


def given_completions(data: str, count: int) -> list[list[str]] | None:
    """The rows' own "completions" (a .jsonl whose every row has them), else None: sample instead."""
    if not data.endswith(".jsonl"):
        return None
    rows = [json.loads(line) for line in Path(data).read_text(encoding="utf-8").splitlines() if line.strip()]
    has = [isinstance(row, dict) and "completions" in row for row in rows[:count]]
    if not any(has):
        return None
    if not all(has):
        raise DataError(f"{data}: some rows have 'completions' and some do not; give them for all or none")
    given = []
    for number, row in enumerate(rows[:count], start=1):
        texts = row["completions"]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise DataError(f"{data}: row {number}'s 'completions' must be a non-empty list of strings")
        given.append(texts)
    return given


def run_label(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from l2t_core.engines import SamplingParams
    from l2t_core.eval.suites import load_suite
    from l2t_core.models import load_model
    from l2t_core.pipeline import ReasoningPipeline

    if not math.isfinite(args.threshold):
        raise DataError(f"--threshold must be a finite number, got {args.threshold}")
    if args.n < 1:
        raise DataError(f"-n must be at least 1, got {args.n}")
    if not args.output.parent.is_dir():
        raise DataError(f"the output's folder {args.output.parent} does not exist")
    problems = load_suite(args.data, args.limit, args.seed if args.seed is not None else 0)
    given = given_completions(args.data, len(problems))
    try:
        config = RewardConfig(**flag_values(args, RewardConfig, LABEL_REWARD_FLAGS))
        params = SamplingParams(n=args.n, **flag_values(args, SamplingParams, (*SAMPLING_FLAGS, "seed")))
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    loaded = load_model(args.model, device=args.device, dtype="float32")
    pipeline = ReasoningPipeline.from_model(loaded, "transformers", config, prompt_format=args.prompt_format)
    partial = args.output.with_name(args.output.name + ".partial")
    rows = steps = good = 0
    try:
        with partial.open("w", encoding="utf-8") as out:
            bar = tqdm(problems, desc="labelling", unit="question", file=sys.stderr, dynamic_ncols=True)
            for index, problem in enumerate(bar):
                prompt = pipeline.prompt(problem.question)
                if given is not None:
                    texts, ids = given[index], None
                else:
                    pool = pipeline.sample(prompt, params)
                    texts, ids = pool.texts, pool.token_ids
                scored = pipeline.score(prompt, texts, reference=problem.answer, token_ids=ids)
                for score in scored.scores:
                    if not score.episodes:
                        continue
                    row = label_row(problem.id, problem.question, problem.answer, score, args.threshold)
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    rows, steps, good = rows + 1, steps + len(row["labels"]), good + sum(row["labels"])
                bar.set_postfix(rows=rows, good=f"{good / steps:.0%}" if steps else "-")
        os.replace(partial, args.output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        pipeline.close()
    print(
        f"wrote {rows} rows ({steps} steps, {good} labelled good at ΔI > {args.threshold:g}) to {args.output}",
        file=sys.stderr,
    )
    return 0
