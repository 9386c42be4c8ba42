"""Candidate pools: N sampled completions per problem, generated once and cached, then scored once per
reward setting. Rerankers only read pools, so they are all compared on the same candidates."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from l2t_core.engines import SamplingParams
from l2t_core.episodes import PromptFormat, RenderedPrompt
from l2t_core.eval.cache import cached_json, content_key, score_from_json, score_to_json
from l2t_core.eval.problems import Problem
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.reward import RewardConfig, normalise_penalty
from l2t_core.scoring import CandidateScore
from l2t_core.search import PROGRESS_SETTINGS, with_progress

# Reward settings that change what the scorer measures; β and aggregation are applied afterwards.
MEASURED_SETTINGS = (
    "target",
    "delta_mode",
    "step_size",
    "damping",
    "rank_ratio",
    "probe",
    "target_suffix",
    "max_episodes",
)
# Settings applied to cached measurements afterwards (no model call): β, aggregation, C_k normalisation.
RAW_MEASUREMENT = {"compression_normalisation": "raw"}
# Reward settings added after caches were first kept, with their defaults: they join a cache key only away
# from the default, so pools scored and searches run before a setting existed keep their keys.
LATER_SETTINGS = {"suffix_probability": "token"}


def reward_cache_key(config: RewardConfig, names: Iterable[str]) -> dict[str, Any]:
    """The reward settings `names` that key a cache, plus each later-added setting away from its default."""
    key = {name: getattr(config, name) for name in names if name not in LATER_SETTINGS}
    key.update(
        {name: getattr(config, name) for name, default in LATER_SETTINGS.items() if getattr(config, name) != default}
    )
    return key


@dataclass(frozen=True)
class Pool:
    problem: Problem
    prompt: RenderedPrompt  # what the completions continue
    completions: list[str]  # prefill + generated text: what is parsed and scored
    n_tokens: list[int]  # generated tokens per completion
    finish_reasons: list[str]
    generate_s: float  # wall time of the generation call that produced the pool
    token_ids: list[list[int]]  # prefill + sampled ids (EOS included) per completion: what the scorer scores

    def generated_tokens(self, indices: Iterable[int]) -> int:
        return sum(self.n_tokens[i] for i in indices)


@dataclass(frozen=True)
class ScoredPool:
    pool: Pool
    scores: list[CandidateScore]
    score_s: float  # wall time of scoring the whole pool


def scored_by(pipeline: ReasoningPipeline) -> tuple[str, ...]:
    """The models whose numbers a cached score holds: the generator, and the scorer model when it is another
    one (with one model the key is what it always was, so existing caches stay valid)."""
    if pipeline.scorer_model is None:
        return (pipeline.model_name,)
    return (pipeline.model_name, "scored by", pipeline.scorer_model)


# Pools keep the sampled ids and are scored on them (as the server scores its candidates); pools cached
# as text only, before, are not reused: their scores were measured on a re-tokenization without the EOS.
POOL_CONTENT = "sampled token ids"


def pool_folder(cache: Path, model: str, params: SamplingParams, prompt_format: PromptFormat) -> Path:
    return cache / "pools" / content_key(model, asdict(params), prompt_format.identity(), POOL_CONTENT)


def build_pools(
    pipeline: ReasoningPipeline,
    problems: list[Problem],
    params: SamplingParams,
    prompt_format: PromptFormat,
    cache: Path,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> list[Pool]:
    """Generate (or read from the cache) a pool per problem; `workers` requests run at once so the engine
    can batch them."""
    folder = pool_folder(cache, pipeline.model_name, params, prompt_format)

    def one(problem: Problem) -> Pool:
        prompt = pipeline.prompt(problem.question, prompt_format=prompt_format.name)

        def generate() -> dict[str, Any]:
            sampled = pipeline.sample(prompt, params)
            return {
                "completions": sampled.texts,
                "n_tokens": [s.n_tokens for s in sampled.samples],
                "finish_reasons": [s.finish_reason for s in sampled.samples],
                "generate_s": sampled.generate_s,
                "token_ids": [list(s.token_ids) for s in sampled.samples],
            }

        cached = cached_json(folder / f"{content_key(problem.question)}.json", generate)
        if progress is not None:
            progress(1)
        return Pool(problem, prompt, **cached)

    with ThreadPoolExecutor(max_workers=workers) as executor:
        return list(executor.map(one, problems))


def score_pools(
    pipeline: ReasoningPipeline,
    pools: list[Pool],
    config: RewardConfig,
    cache: Path,
    progress: Callable[[int], None] | None = None,
    with_reference: bool = False,
    answer_probes: int = 0,
) -> list[ScoredPool]:
    """Score every pool, cached per setting. Rerankers must not see the answer, so the reference is only
    given with `with_reference` (the verifier suite reports that mode separately). `answer_probes` > 0
    adds multi-target J (for posterior strategies and progress)."""
    setting = reward_cache_key(config, MEASURED_SETTINGS)
    probing = (answer_probes,) if answer_probes else ()  # keeps the keys of caches made without probes
    folder = cache / "scores" / content_key(*scored_by(pipeline), setting, with_reference, *probing)
    measured = config.with_overrides(**RAW_MEASUREMENT)
    scored = []
    for pool in pools:

        def score(pool: Pool = pool) -> dict[str, Any]:
            started = time.perf_counter()
            reference = pool.problem.answer if with_reference else None
            scores = pipeline.score(
                pool.prompt,
                pool.completions,
                reference,
                measured,
                answer_probes=answer_probes,
                token_ids=pool.token_ids if all(pool.token_ids) else None,
            ).scores
            return {"scores": [score_to_json(s) for s in scores], "score_s": time.perf_counter() - started}

        cached = cached_json(folder / f"{content_key(pool.prompt.text, pool.completions, pool.token_ids)}.json", score)
        scores = [reweigh(score_from_json(s), config) for s in cached["scores"]]
        if answer_probes:  # recomputed from the cached probes, so it always follows the current definition
            scores = with_progress(scores, PROGRESS_SETTINGS)
        scored.append(ScoredPool(pool, scores, cached["score_s"]))
        if progress is not None:
            progress(1)
    return scored


def reweigh(score: CandidateScore, config: RewardConfig) -> CandidateScore:
    """A cached raw measurement under `config`'s β, aggregation and C_k normalisation (no model call)."""
    if config.compression_normalisation != "raw":
        episodes = tuple(
            replace(e, compression_penalty=normalise_penalty(e.measured_penalty, e.n_tokens, config))
            for e in score.episodes
        )
        score = replace(score, episodes=episodes)
    return score.reweighed(config.beta, config.aggregation)
