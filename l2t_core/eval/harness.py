"""The evaluation run: problems → cached pools → cached scores → every method at every N → results.

Generation suites (arithmetic, GSM8K, any jsonl) compare rerankers on one pool per problem and run
beam-prune live; the verifier suite scores gold-vs-corrupted pools (no generation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from l2t_core.engines import SamplingParams
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, prompt_format
from l2t_core.eval.beam import run_beam
from l2t_core.eval.pool import ScoredPool, build_pools, score_pools
from l2t_core.eval.problems import Problem
from l2t_core.eval.rerankers import correctness, evaluate
from l2t_core.eval.stats import bootstrap_difference, bootstrap_mean
from l2t_core.eval.suites import load_suite, split, suite_name
from l2t_core.eval.tuning import Setting, grid, reweigh_pools
from l2t_core.eval.verifier_eval import run_verifier
from l2t_core.models import load_models
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.reward import RewardConfig
from l2t_core.search import MAX_ANSWER_PROBES, POOL_STRATEGIES, AdaptiveConfig, PosteriorSettings, get_strategy
from l2t_core.search.posterior import READ_AT, WEIGHTINGS

logger = logging.getLogger(__name__)

POOL_SIZES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class EvalSettings:
    data: list[str]
    out: Path
    cache: Path
    limit: int | None = None
    n: int = 8
    methods: tuple[str, ...] = POOL_STRATEGIES
    beam_budgets: tuple[int, ...] = ()
    engine: str = "transformers"
    model: str = "default"
    device: str = "auto"
    dtype: str = "float32"
    scorer_model: str | None = None  # a second model for J and rewards (None: `model` scores)
    scorer_device: str | None = None  # None: `device`
    remote_url: str | None = None
    vllm_args: dict[str, Any] = field(default_factory=dict)  # engine vllm: arguments of vLLM's engine
    max_tokens: int = 128
    temperature: float = SamplingParams.temperature
    top_p: float = SamplingParams.top_p
    seed: int = 0
    split: str = "all"
    reward: RewardConfig = field(default_factory=RewardConfig)
    prompt_format: str = DEFAULT_PROMPT_FORMAT
    beam_width: int = 8
    episode_tokens: int = 48
    beam_partial_target: str = "probe"
    beam_value: str = "reward"
    beam_exit_confidence: float | None = None
    compare_n: int = 8  # the N the targets and comparisons are stated at
    tune: bool = False
    workers: int = 4
    progress: bool = True


def run(settings: EvalSettings) -> dict[str, Any]:
    suites = {suite_name(d): split(load_suite(d, settings.limit, settings.seed), settings.split) for d in settings.data}
    started = time.perf_counter()
    loaded, scorer = load_models(
        settings.model,
        settings.scorer_model,
        settings.device,
        settings.scorer_device,
        settings.dtype,
        generates_here=settings.engine == "transformers",
    )
    options: dict[str, Any] = {"remote_url": settings.remote_url} if settings.remote_url else {}
    options["vllm_args"] = settings.vllm_args
    pipeline = ReasoningPipeline.from_model(
        loaded,
        engine=settings.engine,
        config=settings.reward,
        prompt_format=settings.prompt_format,
        scorer_model=scorer,
        **options,
    )
    results: dict[str, Any] = {
        "settings": _describe(settings, pipeline),
        "suites": {},
    }
    try:
        for name, problems in suites.items():
            logger.info("suite %s: %d problems", name, len(problems))
            if name == "verifier":
                with _bar(settings, 2 * len(problems), f"{name}: score") as bar:
                    results["suites"][name] = run_verifier(
                        pipeline, problems, settings.reward, settings.cache, settings.seed, bar
                    )
            else:
                results["suites"][name] = run_generation_suite(pipeline, problems, settings)
    finally:
        pipeline.close()
    results["wall_s"] = time.perf_counter() - started
    return results


def _describe(settings: EvalSettings, pipeline: ReasoningPipeline) -> dict[str, Any]:
    described = asdict(settings)
    described["out"] = str(settings.out)
    described["cache"] = str(settings.cache)
    described["model_name"] = pipeline.model_name
    described["scorer_model_name"] = pipeline.scorer_model or pipeline.model_name
    described["device"] = pipeline.device
    described["prompt"] = asdict(prompt_format(settings.prompt_format))
    return described


class _bar:
    """A tqdm bar (or nothing when progress is off) usable as a `progress(k)` callback."""

    def __init__(self, settings: EvalSettings, total: int, description: str) -> None:
        self.bar = tqdm(total=total, desc=description, disable=not settings.progress, dynamic_ncols=True)

    def __enter__(self) -> Callable[[int], None]:
        return lambda k: self.bar.update(k)

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def run_generation_suite(
    pipeline: ReasoningPipeline, problems: list[Problem], settings: EvalSettings
) -> dict[str, Any]:
    params = SamplingParams(settings.n, settings.max_tokens, settings.temperature, settings.top_p)
    with _bar(settings, len(problems), "generate") as bar:
        pools = build_pools(
            pipeline, problems, params, prompt_format(settings.prompt_format), settings.cache, settings.workers, bar
        )
    targets = ("self", "consensus") if settings.tune else (settings.reward.target,)
    by_target: dict[str, list[ScoredPool]] = {}
    for target in targets:
        with _bar(settings, len(pools), f"score ({target})") as bar:
            by_target[target] = score_pools(
                pipeline,
                pools,
                settings.reward.with_overrides(target=target),
                settings.cache,
                bar,
                answer_probes=answer_probes_for(settings.methods),
            )
    table = correctness(by_target[settings.reward.target])
    reward = settings.reward
    setting = Setting(reward.target, reward.beta, reward.aggregation, reward.compression_normalisation)
    scored = reweigh_pools(by_target[settings.reward.target], setting)
    ns = [n for n in POOL_SIZES if n <= settings.n]
    compare_n = min(settings.compare_n, settings.n)
    outcomes = {m: {n: evaluate(scored, table, m, n) for n in ns} for m in settings.methods if m in POOL_STRATEGIES}
    result: dict[str, Any] = {
        "problems": len(problems),
        "setting": setting.label(),
        "pool": _pool_stats(scored),
        "methods": {m: {str(n): _summary(o, settings.seed) for n, o in by_n.items()} for m, by_n in outcomes.items()},
        "compare_n": compare_n,
        "comparisons": _comparisons(outcomes, compare_n, settings.seed),
        # per problem at compare_n, so rows of two runs (another suffix, scorer or default) can be paired
        "per_problem": {
            "ids": [p.id for p in problems],
            "correct": {m: by_n[compare_n].correct for m, by_n in outcomes.items() if compare_n in by_n},
        },
        "by_level": _by_level(problems, outcomes, compare_n),
        "ablation_beta0": {
            m: _summary(
                evaluate(
                    reweigh_pools(scored, Setting(setting.target, 0.0, setting.aggregation, "raw")), table, m, compare_n
                ),
                settings.seed,
            )
            for m in ("best_of_n", "weighted_vote")
            if m in outcomes
        },
    }
    # each grid row paired with majority and loglik (the two bars) on the same pools: a setting
    # picked on the tune half carries its differences to the test half's report, not only its accuracy
    baselines = {m: outcomes[m][compare_n].correct for m in GRID_BASELINES if m in outcomes}
    if "posterior_vote" in outcomes:
        result["posterior_tuning"] = posterior_grid(scored, table, compare_n, settings.seed, baselines)
    if "adaptive" in outcomes:
        result["adaptive_tuning"] = adaptive_grid(scored, table, compare_n, settings.seed, baselines)
    if settings.tune:
        rows = grid(by_target, table, compare_n)
        result["tuning"] = [
            {"setting": asdict(s), "label": s.label(), "weighted_vote": v, "best_of_n": b} for s, v, b in rows
        ]
    if settings.beam_budgets:
        result["beam_prune"] = _beam(pipeline, problems, settings, outcomes)
    return result


def answer_probes_for(methods: tuple[str, ...]) -> int:
    """Multi-target J is measured only when a method reads it (directly, or as adaptive's selector)."""
    readers = [get_strategy(AdaptiveConfig().select if get_strategy(m).kind == "adaptive" else m) for m in methods]
    return MAX_ANSWER_PROBES if any(s.needs_answer_probes for s in readers) else 0


# Per-problem outcomes every grid row is paired with (`minus_<method>`), when the run has the method.
GRID_BASELINES = ("majority", "loglik")


def posterior_grid(
    scored: list[ScoredPool],
    table: list[list[bool]],
    n: int,
    seed: int,
    baselines: dict[str, list[float]] | None = None,
) -> list[dict[str, Any]]:
    """posterior_vote's accuracy at N under every temperature, path weighting (with the confidence
    weights' temperature, CISC's tuned knob) and read-out cut, paired with each of `baselines`."""
    rows = []
    for read_at in READ_AT:
        for weighting in WEIGHTINGS:
            for weight_temperature in (1.0, 0.5, 0.25, 0.1) if weighting == "confidence" else (1.0,):
                for temperature in (0.25, 0.5, 1.0, 2.0):
                    settings = PosteriorSettings(temperature, weighting, read_at, weight_temperature)
                    outcome = evaluate(scored, table, "posterior_vote", n, posterior=settings)
                    rows.append({"setting": asdict(settings), **_summary(outcome, seed, baselines)})
    return rows


def adaptive_grid(
    scored: list[ScoredPool],
    table: list[list[bool]],
    n: int,
    seed: int,
    baselines: dict[str, list[float]] | None = None,
) -> list[dict[str, Any]]:
    """adaptive's accuracy and spend at N under every confidence and selector (its served options), paired
    with each of `baselines`."""
    probed = all(s.answer_probes is not None for p in scored for s in p.scores)
    selectors = ["majority", "loglik", *(["posterior_vote"] if probed else [])]
    rules = [{"stop": "vote", "confidence": c} for c in (0.8, 0.875, 0.9, 0.95)]
    rules += [{"stop": "confident", "min_logprob": t} for t in (-0.1, -0.15, -0.2, -0.25, -0.3, -0.4)]
    rows = []
    for select in selectors:
        for rule in rules:
            config = AdaptiveConfig(round_size=2, select=select, **rule)  # type: ignore[arg-type]
            outcome = evaluate(scored, table, "adaptive", n, config)
            rows.append({"setting": asdict(config), **_summary(outcome, seed, baselines)})
    return rows


def _summary(outcome: Any, seed: int, baselines: dict[str, list[float]] | None = None) -> dict[str, Any]:
    summary = {
        "accuracy": bootstrap_mean(outcome.correct, seed).to_dict(),
        "tokens": sum(outcome.tokens) / len(outcome.tokens),
        "samples": sum(outcome.samples) / len(outcome.samples),
        "scored_tokens": sum(outcome.scored_tokens) / len(outcome.scored_tokens),
        "scoring_s": sum(outcome.scoring_s) / len(outcome.scoring_s) if outcome.scoring_s else None,
    }
    for name, correct in (baselines or {}).items():
        summary[f"minus_{name}"] = bootstrap_difference(outcome.correct, correct, seed).to_dict()
    return summary


def _pool_stats(scored: list[ScoredPool]) -> dict[str, float]:
    candidates = [s for p in scored for s in p.scores]
    return {
        "candidates": len(candidates),
        "tag_rate": sum(s.tagged for s in candidates) / len(candidates),
        "answered_rate": sum(s.answer is not None for s in candidates) / len(candidates),
        "mean_episodes": sum(len(s.episodes) for s in candidates) / len(candidates),
        "mean_tokens": sum(t for p in scored for t in p.pool.n_tokens) / len(candidates),
        "finished_rate": sum(r == "stop" for p in scored for r in p.pool.finish_reasons) / len(candidates),
        "generate_s_per_problem": sum(p.pool.generate_s for p in scored) / len(scored),
        "score_s_per_problem": sum(p.score_s for p in scored) / len(scored),
    }


def _comparisons(outcomes: dict[str, dict[int, Any]], n: int, seed: int) -> dict[str, Any]:
    pairs = [
        ("weighted_vote", "majority"),
        ("weighted_vote", "loglik"),
        ("best_of_n", "loglik"),
        ("best_of_n", "first"),
        ("loglik", "majority"),
        ("confidence", "majority"),
        ("posterior_vote", "majority"),
        ("posterior_vote", "loglik"),
        ("adaptive", "majority"),
    ]
    return {
        f"{a} - {b}": bootstrap_difference(outcomes[a][n].correct, outcomes[b][n].correct, seed).to_dict()
        for a, b in pairs
        if a in outcomes and b in outcomes
    }


def _by_level(problems: list[Problem], outcomes: dict[str, dict[int, Any]], n: int) -> dict[str, Any]:
    levels = sorted({p.level for p in problems if p.level})
    table: dict[str, Any] = {}
    for level in levels:
        rows = [i for i, p in enumerate(problems) if p.level == level]
        table[level] = {"problems": len(rows)}
        for method, by_n in outcomes.items():
            correct = by_n[n].correct
            table[level][method] = sum(correct[i] for i in rows) / len(rows)
    return table


def _beam(
    pipeline: ReasoningPipeline, problems: list[Problem], settings: EvalSettings, outcomes: dict[str, dict[int, Any]]
) -> dict[str, Any]:
    width = min(settings.beam_width, settings.n)
    sampling = SamplingParams(width, settings.max_tokens, settings.temperature, settings.top_p)
    compared = next((m for m in ("majority", "weighted_vote") if m in outcomes), None)
    reference = outcomes[compared][width] if compared is not None else None
    runs: dict[str, Any] = {}
    for budget in settings.beam_budgets:
        beam: dict[str, Any] = {
            "token_budget": budget,
            "episode_tokens": settings.episode_tokens,
            "partial_target": settings.beam_partial_target,
        }
        # only settings away from the defaults join the cache key: earlier searches stay cached
        if settings.beam_value != "reward":
            beam["value"] = settings.beam_value
        if settings.beam_exit_confidence is not None:
            beam["exit_confidence"] = settings.beam_exit_confidence
        with _bar(settings, len(problems), f"beam_prune budget {budget}") as bar:
            found = run_beam(pipeline, problems, sampling, beam, settings.reward, settings.cache, settings.workers, bar)
        correct = [float(o.correct) for o in found]
        tokens = sum(o.generated_tokens for o in found) / len(found)
        entry: dict[str, Any] = {
            "width": width,
            "budget": budget,
            "accuracy": bootstrap_mean(correct, settings.seed).to_dict(),
            "tokens": tokens,
            "probe_tokens": sum(o.probe_tokens for o in found) / len(found),
            "forced_rate": sum(o.forced for o in found) / len(found),
            "mean_rounds": sum(o.rounds for o in found) / len(found),
            "mean_exited": sum(o.exited for o in found) / len(found),
            "generate_s": sum(o.generate_s for o in found) / len(found),
            "score_s": sum(o.score_s for o in found) / len(found),
            "per_problem": {"ids": [p.id for p in problems], "correct": correct},
        }
        if reference is not None:
            entry["best_of_n"] = {
                "method": compared,
                "n": width,
                "tokens": sum(reference.tokens) / len(reference.tokens),
            }
            entry["token_ratio"] = tokens / entry["best_of_n"]["tokens"]
            entry["minus_best_of_n"] = bootstrap_difference(correct, reference.correct, settings.seed).to_dict()
        full_n = max(outcomes[compared]) if compared is not None else width
        if compared is not None and full_n > width:
            # the efficiency target's comparison: the search against the whole pool's vote (majority@N), paired
            full = outcomes[compared][full_n]
            full_tokens = sum(full.tokens) / len(full.tokens)
            entry["against_full_pool"] = {
                "method": compared,
                "n": full_n,
                "tokens": full_tokens,
                "token_ratio": tokens / full_tokens,
                "minus": bootstrap_difference(correct, full.correct, settings.seed).to_dict(),
            }
        runs[str(budget)] = entry
    return runs
