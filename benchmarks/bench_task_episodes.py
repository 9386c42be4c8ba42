"""How the untrained model answers a training task: accuracy, episodes per answer and length, per level.

A task is worth training the L2T reward on when the initial model is right often enough to learn from
(single-sample accuracy well inside (0, 1)) and writes several episodes, so that some can be worth
more than others. For each prompt format and graded-arithmetic level this samples the problems the
trainer would use (`arithmetic_split(levels, seed=0)`: the held-back half, or the start of the training
stream for tuning a prompt without touching held-back questions) through the serving pipeline
(prompt format, prefill, engine batching) and scores answers with the trainer's matcher. Reported per
(format, level) and over all levels together, each a mean over problems with a 95% bootstrap interval:
single-sample accuracy at the rollout temperature, greedy accuracy, episodes per answer, generated
tokens, the share of answers with episode tags and the share that hit the token limit; and how often
a sampled answer has at least k episodes. With `--gains` it also scores every sampled answer as the
trainer scores rollouts (`training_reward`: the reference answer as J's target) and reports, per
episode position k, the share of answers with that episode, its mean fitting gain ΔI_k (over all
answers, right ones and wrong ones) and its mean tokens: whether some positions carry information
about the answer and others about none.

    OMP_NUM_THREADS=2 python benchmarks/bench_task_episodes.py --formats stepwise,worked \\
        --levels addsub3,word2 --limit 100 --samples 4 --max-tokens 160 --out task_episodes.json
    OMP_NUM_THREADS=2 python benchmarks/bench_task_episodes.py --formats restated --levels add2 \\
        --split held_back --limit 100 --samples 4 --max-tokens 160 --gains --out restated_add2.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from l2t_core.answers import answers_match, extract_answer
from l2t_core.engines import SamplingParams
from l2t_core.episodes import PROMPT_FORMATS, parse_episodes
from l2t_core.eval.stats import Estimate, bootstrap_mean
from l2t_core.eval.tasks.arithmetic import LEVELS
from l2t_core.models import load_model
from l2t_core.pipeline import ReasoningPipeline, Sample
from l2t_core.result import SampledPool
from l2t_core.scoring.results import CandidateScore
from l2t_core.train.config import TrainConfig
from l2t_core.train.data import Example, arithmetic_split
from l2t_core.train.trainer import training_reward

IN_FLIGHT = 16  # questions at once: 16 × n=4 rows fill one engine micro-batch
POSITIONS = 6  # episode positions reported in the "has ≥ k episodes" view


@dataclass(frozen=True)
class Answer:
    """One completion, judged: what every reported number is a mean of."""

    correct: float
    episodes: int
    tokens: int
    tagged: bool
    truncated: bool
    text: str
    gains: tuple[float, ...] = ()  # ΔI_k per episode, when scored (`--gains`)
    episode_tokens: tuple[int, ...] = ()  # each scored episode's tokens

    @classmethod
    def of(cls, sample: Sample, reference: str, score: CandidateScore | None = None) -> Answer:
        parsed = parse_episodes(sample.text)
        episodes = score.episodes if score is not None else ()
        return cls(
            float(answers_match(extract_answer(sample.text), reference)),
            len(parsed.episodes),
            sample.n_tokens,
            parsed.tagged,
            sample.finish_reason == "length",
            sample.text,
            tuple(e.fitting_gain for e in episodes),
            tuple(e.token_end - e.token_start for e in episodes),
        )


@dataclass(frozen=True)
class ProblemResult:
    level: str
    greedy: Answer
    sampled: tuple[Answer, ...]


def problems(levels: tuple[str, ...], split: str, limit: int) -> list[tuple[str, Example]]:
    """(level, problem): the first `limit` of each level in the chosen half of `arithmetic_split`."""
    out = []
    for level in levels:
        train, held_back = arithmetic_split((level,), seed=0)
        out += [(level, example) for example in (held_back if split == "held_back" else train)[:limit]]
    return out


def answer_all(
    pipeline: ReasoningPipeline, fmt: str, batch: list[tuple[str, Example]], params: SamplingParams
) -> list[SampledPool]:
    def one(item: tuple[str, Example]) -> SampledPool:
        return pipeline.sample(pipeline.prompt(item[1].question, prompt_format=fmt), params)

    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        return list(pool.map(one, batch))


def score_all(
    pipeline: ReasoningPipeline, batch: list[tuple[str, Example]], pools: list[SampledPool]
) -> list[list[CandidateScore]]:
    """Every sampled answer scored as the trainer scores its rollouts: the pipeline's reward is the trainer's
    (`training_reward`), the reference answer J's target."""

    def one(item: tuple[tuple[str, Example], SampledPool]) -> list[CandidateScore]:
        (_, example), sampled = item
        return pipeline.score(
            sampled.prompt, sampled.texts, reference=example.answer, token_ids=sampled.token_ids
        ).scores

    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        return list(pool.map(one, zip(batch, pools, strict=True)))


def measure(
    pipeline: ReasoningPipeline,
    fmt: str,
    batch: list[tuple[str, Example]],
    samples: int,
    max_tokens: int,
    gains: bool = False,
) -> list[ProblemResult]:
    greedy = answer_all(pipeline, fmt, batch, SamplingParams(n=1, max_tokens=max_tokens, temperature=0.0))
    sampled = answer_all(pipeline, fmt, batch, SamplingParams(n=samples, max_tokens=max_tokens))
    scores: list[Sequence[CandidateScore | None]] = (
        list(score_all(pipeline, batch, sampled)) if gains else [(None,) * samples for _ in batch]
    )
    return [
        ProblemResult(
            level,
            Answer.of(g.samples[0], example.answer),
            tuple(Answer.of(s, example.answer, c) for s, c in zip(pool.samples, scored, strict=True)),
        )
        for (level, example), g, pool, scored in zip(batch, greedy, sampled, scores, strict=True)
    ]


def summarise(results: list[ProblemResult]) -> dict[str, Estimate]:
    """Per-problem means (of its sampled answers, or its greedy one), bootstrapped over problems."""

    def over_samples(value: Any) -> Estimate:
        return bootstrap_mean([statistics.fmean(float(value(a)) for a in r.sampled) for r in results])

    out = {
        "sample_accuracy": over_samples(lambda a: a.correct),
        "greedy_accuracy": bootstrap_mean([r.greedy.correct for r in results]),
        "sample_episodes": over_samples(lambda a: a.episodes),
        "greedy_episodes": bootstrap_mean([float(r.greedy.episodes) for r in results]),
        "sample_tokens": over_samples(lambda a: a.tokens),
        "sample_tagged": over_samples(lambda a: a.tagged),
        "sample_truncated": over_samples(lambda a: a.truncated),
        "greedy_truncated": bootstrap_mean([float(r.greedy.truncated) for r in results]),
    }
    for k in range(1, POSITIONS + 1):
        out[f"has_episode_{k}"] = over_samples(lambda a, k=k: a.episodes >= k)
    return out


def gains_by_position(results: list[ProblemResult]) -> list[dict[str, Estimate]]:
    """Per episode position k (1-based, up to the longest scored answer): the share of sampled answers that
    have episode k, its mean ΔI_k over those answers (and over the right and the wrong ones apart) and its
    mean tokens, each bootstrapped over answers."""
    answers = [a for r in results for a in r.sampled]
    rows = []
    for k in range(max((len(a.gains) for a in answers), default=0)):
        having = [a for a in answers if len(a.gains) > k]
        rows.append(
            {
                "share": bootstrap_mean([float(len(a.gains) > k) for a in answers]),
                "gain": bootstrap_mean([a.gains[k] for a in having]),
                "gain_right": bootstrap_mean([a.gains[k] for a in having if a.correct]),
                "gain_wrong": bootstrap_mean([a.gains[k] for a in having if not a.correct]),
                "tokens": bootstrap_mean([float(a.episode_tokens[k]) for a in having]),
            }
        )
    return rows


def gains_markdown(fmt: str, level: str, rows: list[dict[str, Estimate]]) -> str:
    lines = [
        f"ΔI_k by episode position ({fmt}, {level}; sampled answers, reference answer as target)",
        "",
        "| k | answers with episode k % | mean ΔI_k | ΔI_k, right answers | ΔI_k, wrong answers | tokens |",
        "|---|---|---|---|---|---|",
    ]
    for k, row in enumerate(rows, 1):
        right, wrong = row["gain_right"], row["gain_wrong"]
        lines.append(
            f"| {k} | {row['share'].percent()} (n {row['gain'].n}) | {_mean(row['gain'], 4)} "
            f"| {_mean(right, 4) if right.n else '-'} (n {right.n}) | {_mean(wrong, 4) if wrong.n else '-'} "
            f"(n {wrong.n}) | {_mean(row['tokens'])} |"
        )
    return "\n".join(lines)


def _mean(e: Estimate, digits: int = 1) -> str:
    return f"{e.mean:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def markdown(rows: list[tuple[str, str, dict[str, Estimate]]]) -> str:
    lines = [
        "| format | level | n | pass@1 (T) % | greedy % | episodes (T) | episodes (greedy) | tokens (T) "
        "| tagged % | at limit (T) % | at limit (greedy) % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fmt, level, s in rows:
        lines.append(
            f"| {fmt} | {level} | {s['sample_accuracy'].n} | {s['sample_accuracy'].percent()} "
            f"| {s['greedy_accuracy'].percent()} | {_mean(s['sample_episodes'], 2)} | {_mean(s['greedy_episodes'], 2)} "
            f"| {_mean(s['sample_tokens'])} | {s['sample_tagged'].percent()} | {s['sample_truncated'].percent()} "
            f"| {s['greedy_truncated'].percent()} |"
        )
    lines += ["", "| format | level | " + " | ".join(f"≥{k} ep %" for k in range(1, POSITIONS + 1)) + " |"]
    lines.append("|---|---|" + "---|" * POSITIONS)
    for fmt, level, s in rows:
        shares = " | ".join(f"{100 * s[f'has_episode_{k}'].mean:.0f}" for k in range(1, POSITIONS + 1))
        lines.append(f"| {fmt} | {level} | {shares} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default="stepwise,worked", help=f"comma list of {', '.join(PROMPT_FORMATS)}")
    parser.add_argument("--levels", default="addsub3,word2", help=f"comma list of {', '.join(LEVELS)}")
    parser.add_argument(
        "--split",
        choices=("held_back", "train"),
        default="held_back",
        help="held_back: the trainer's evaluation questions; train: its training stream (for tuning)",
    )
    parser.add_argument("--limit", type=int, default=100, help="problems per level")
    parser.add_argument("--samples", type=int, default=4, help="samples per problem at the rollout temperature")
    parser.add_argument("--max-tokens", type=int, default=160, help="tokens one answer may generate")
    parser.add_argument("--model", default="default")
    parser.add_argument(
        "--gains", action="store_true", help="also score the sampled answers and report ΔI_k per episode position"
    )
    parser.add_argument("--out", type=Path, help="write the per-row summaries and per-problem results as JSON")
    args = parser.parse_args()
    formats = tuple(f for f in args.formats.split(",") if f)
    levels = tuple(level for level in args.levels.split(",") if level)
    unknown = (set(formats) - set(PROMPT_FORMATS)) | (set(levels) - set(LEVELS))
    if unknown:
        parser.error(f"unknown format(s) or level(s): {sorted(unknown)}")

    # the trainer's reward (Δθ̃ as drift from these initial weights), so `--gains` scores as training does
    pipeline = ReasoningPipeline.from_model(load_model(args.model), config=training_reward(TrainConfig()))
    batch = problems(levels, args.split, args.limit)
    rows: list[tuple[str, str, dict[str, Estimate]]] = []
    gain_tables: list[tuple[str, str, list[dict[str, Estimate]]]] = []
    raw: dict[str, Any] = {}
    for fmt in formats:
        started = time.perf_counter()
        results = measure(pipeline, fmt, batch, args.samples, args.max_tokens, args.gains)
        seconds = time.perf_counter() - started
        groups = [(level, [r for r in results if r.level == level]) for level in levels]
        if len(levels) > 1:
            groups.append(("+".join(levels), results))
        for level, group in groups:
            rows.append((fmt, level, summarise(group)))
            if args.gains:
                gain_tables.append((fmt, level, gains_by_position(group)))
        raw[fmt] = {
            "seconds": seconds,
            "problems": [
                {"level": r.level, "greedy": r.greedy.__dict__, "sampled": [a.__dict__ for a in r.sampled]}
                for r in results
            ],
        }
    print("\n\n".join([markdown(rows), *(gains_markdown(*table) for table in gain_tables)]))
    if args.out:
        summary = [{"format": f, "level": lv, **{k: e.to_dict() for k, e in s.items()}} for f, lv, s in rows]
        by_position = [
            {"format": f, "level": lv, "positions": [{k: e.to_dict() for k, e in row.items()} for row in table]}
            for f, lv, table in gain_tables
        ]
        settings = {k: str(v) for k, v in vars(args).items()}
        out = {"settings": settings, "rows": summary, "gains_by_position": by_position, "raw": raw}
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
