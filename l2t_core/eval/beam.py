"""Beam-prune runs for the evaluation: one search per problem, cached like pools (a search is sampled,
so a rerun of the report must not redraw it)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from l2t_core.answers import answers_match
from l2t_core.engines import SamplingParams
from l2t_core.episodes.prompt import PromptFormat
from l2t_core.eval.cache import cached_json, content_key
from l2t_core.eval.problems import Problem
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.reward import RewardConfig
from l2t_core.search import BeamPruneConfig, beam_prune


@dataclass(frozen=True)
class BeamOutcome:
    answer: str | None
    correct: bool
    generated_tokens: int
    probe_tokens: int
    scoring_tokens: int
    forced: bool  # no path finished within the budget; the best prefix was closed with its probe answer
    rounds: int
    generate_s: float
    score_s: float


def run_beam(
    pipeline: ReasoningPipeline,
    problems: list[Problem],
    sampling: SamplingParams,
    beam: BeamPruneConfig,
    reward: RewardConfig,
    prompt_format: PromptFormat,
    cache: Path,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> list[BeamOutcome]:
    folder = (
        cache
        / "beam"
        / content_key(pipeline.engine.model_name, asdict(sampling), asdict(beam), asdict(reward), asdict(prompt_format))
    )

    def one(problem: Problem) -> BeamOutcome:

        def search() -> dict[str, Any]:
            prompt = pipeline.render(prompt_format.messages(problem.question))
            result = beam_prune(
                pipeline.engine, pipeline.scorer, prompt, sampling, beam, reward, prefill=prompt_format.prefill
            )
            best_path, best = result.ranked[0]
            return {
                "answer": best.answer,
                "generated_tokens": result.generated_tokens,
                "probe_tokens": result.probe_tokens,
                "scoring_tokens": result.scoring_tokens,
                "forced": best_path.finish_reason == "forced",
                "rounds": result.rounds,
                "generate_s": result.generate_s,
                "score_s": result.score_s,
            }

        cached = cached_json(folder / f"{content_key(problem.question)}.json", search)
        if progress is not None:
            progress(1)
        return BeamOutcome(correct=answers_match(cached["answer"], problem.answer), **cached)

    with ThreadPoolExecutor(max_workers=workers) as executor:
        return list(executor.map(one, problems))
