"""Beam-prune runs for the evaluation: one search per problem through the pipeline, cached like pools
(a search is sampled, so a rerun of the report must not redraw it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from l2t_core.answers import answers_match
from l2t_core.engines import SamplingParams
from l2t_core.eval.cache import cached_json, content_key
from l2t_core.eval.pool import reward_cache_key, scored_by
from l2t_core.eval.problems import Problem
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.request import GenerationRequest
from l2t_core.reward import RewardConfig


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
    exited: int = 0  # paths closed by the exit rule (searches cached before it existed have none)


def run_beam(
    pipeline: ReasoningPipeline,
    problems: list[Problem],
    sampling: SamplingParams,
    beam: Mapping[str, Any],
    reward: RewardConfig,
    cache: Path,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> list[BeamOutcome]:
    """`sampling.n` paths per problem in the pipeline's prompt format; `beam` overrides the search settings."""
    prompt_format = pipeline.prompt_format()
    folder = (
        cache
        / "beam"
        / content_key(
            *scored_by(pipeline),
            asdict(sampling),
            dict(beam),
            reward_cache_key(reward, asdict(reward)),
            prompt_format.identity(),
        )
    )

    def one(problem: Problem) -> BeamOutcome:
        def search() -> dict[str, Any]:
            prompt = pipeline.prompt(problem.question)
            result = pipeline.run(GenerationRequest.build(prompt, sampling, "beam_prune", reward, beam=beam))
            assert result.search is not None  # beam_prune always reports its accounting
            best = result.best
            return {
                "answer": best.score.answer,
                "generated_tokens": result.search.generated_tokens,
                "probe_tokens": result.search.probe_tokens,
                "scoring_tokens": result.search.scoring_tokens,
                "forced": best.finish_reason == "forced",
                "rounds": result.search.rounds,
                "generate_s": result.search.generate_s,
                "score_s": result.search.score_s,
                "exited": result.search.exited,
            }

        cached = cached_json(folder / f"{content_key(problem.question)}.json", search)
        if progress is not None:
            progress(1)
        return BeamOutcome(correct=answers_match(cached["answer"], problem.answer), **cached)

    with ThreadPoolExecutor(max_workers=workers) as executor:
        return list(executor.map(one, problems))
