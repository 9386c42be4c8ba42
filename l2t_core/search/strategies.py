"""The strategy registry: every way the pipeline can choose an answer, declared once with its behaviour.

Each entry holds the function that runs it (`run`: the pipeline dispatches `STRATEGIES[name].run`, as
search-and-learn dispatches `APPROACHES[config.approach]`), and a reranker also its ranker (`rank`).
Rerankers share one runner (sample N, score, rank); `adaptive` samples in rounds until the answer is
decided (search/adaptive.py); `beam_prune` searches episode by episode (search/beam_prune.py). A strategy
that takes settings names their type (`settings`), so a request can only carry settings its strategy
reads (l2t_core/request.py). Adding a strategy is one entry here and its function.

`signal` says what the choice reads: nothing but the answers (`answers`), the sampled tokens'
log-probabilities (`logprobs`, one plain forward), the L2T path score (`l2t`, the K+1 answer probes and
the compression term per candidate), or multi-target J (`posterior`: every pool answer probed at every
cut, l2t_core/search/posterior.py). The HTTP schemas, the OpenAI extension, `l2t generate` and `l2t eval`
all take their choices from here, so a strategy added once is reachable everywhere. L2T rewards are
computed and returned for every candidate whatever the strategy; `signal` is what the choice depends on
(and what the evaluation charges it for).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from l2t_core.errors import InvalidRequest
from l2t_core.scoring import CandidateScore
from l2t_core.search import rerank
from l2t_core.search.adaptive import AdaptiveConfig, run_adaptive
from l2t_core.search.beam_prune import BeamPruneConfig, run_beam_prune
from l2t_core.search.posterior import POSTERIOR_SETTINGS, PosteriorSettings
from l2t_core.search.rerank import RankContext, Ranker

if TYPE_CHECKING:
    from l2t_core.pipeline import ReasoningPipeline
    from l2t_core.request import GenerationRequest
    from l2t_core.result import PipelineResult

Runner = Callable[["ReasoningPipeline", "GenerationRequest", "threading.Event | None"], "PipelineResult"]
Signal = Literal["none", "answers", "logprobs", "l2t", "posterior"]


@dataclass(frozen=True)
class Strategy:
    name: str
    help: str
    kind: Literal["rerank", "adaptive", "search"]
    signal: Signal
    run: Runner  # answers one request: (pipeline, request, cancel) -> result
    rank: Ranker | None = None  # rerankers: orders a scored pool, best first
    settings: type[BeamPruneConfig] | type[AdaptiveConfig] | None = None  # the settings it takes, if any
    served: bool = True  # False: evaluation only (needs the gold answer)
    synonyms: tuple[str, ...] = ()

    @property
    def needs_answer_probes(self) -> bool:
        """Whether scoring must measure multi-target J over the pool's answers for this strategy."""
        return self.signal == "posterior"


def _reranker(
    name: str, help: str, signal: Signal, ranker: Ranker, served: bool = True, synonyms: tuple[str, ...] = ()
) -> Strategy:
    """A reranking strategy: the shared sample-score-rank runner around its own ranker."""
    return Strategy(name, help, "rerank", signal, rerank.run_reranker, ranker, None, served, synonyms)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        _reranker("first", "the first sample (the single-sample baseline)", "none", rerank.in_generation_order),
        _reranker("majority", "the most frequent answer (self-consistency voting)", "answers", rerank.by_majority),
        _reranker("loglik", "the highest mean token log-probability", "logprobs", rerank.by_mean_logprob),
        _reranker(
            "confidence",
            "DeepConf lowest group confidence: the path's shakiest 16-token window",
            "logprobs",
            rerank.by_group_confidence,
        ),
        _reranker(
            "best_of_n",
            "the highest L2T path score (episode rewards aggregated)",
            "l2t",
            rerank.by_path_score,
            synonyms=("l2t_best",),
        ),
        _reranker(
            "weighted_vote",
            "answers voted with softmax weights of their paths' L2T scores",
            "l2t",
            rerank.by_weighted_vote,
            synonyms=("l2t_vote",),
        ),
        _reranker(
            "posterior_vote",
            "answers weighted by the paths' probe probability of every pool answer, read after each path's "
            "last episode and weighted by sharpened confidence (soft self-consistency over multi-target J)",
            "posterior",
            rerank.by_posterior_vote,
        ),
        Strategy(
            "adaptive",
            "sample in rounds and stop at the first confident sample or a decided vote, then choose among "
            "the samples drawn",
            "adaptive",
            "answers",
            run_adaptive,
            settings=AdaptiveConfig,
        ),
        _reranker(
            "oracle",
            "a sample whose answer matches the reference (pass@N)",
            "answers",
            rerank.by_reference,
            served=False,
        ),
        Strategy(
            "beam_prune",
            "episode-level search: N paths pruned by L2T score after each episode, within a token budget",
            "search",
            "l2t",
            run_beam_prune,
            settings=BeamPruneConfig,
        ),
    )
}
SYNONYMS = {synonym: s.name for s in STRATEGIES.values() for synonym in s.synonyms}
SERVED_STRATEGIES = tuple(name for name, s in STRATEGIES.items() if s.served)
RERANKERS = tuple(name for name, s in STRATEGIES.items() if s.rank is not None)
# Strategies the evaluation measures over cached pools (adaptive replays its stopping rule on one).
POOL_STRATEGIES = tuple(name for name, s in STRATEGIES.items() if s.kind in ("rerank", "adaptive"))
# Chosen by measurement on the tune halves (never worse than voting): docs/decisions.md.
DEFAULT_STRATEGY = "loglik"


def engine_scoring_refusal(strategies: Sequence[Strategy], beta: float) -> InvalidRequest | None:
    """Why a request cannot run on engine-side scores (`l2t_core.scoring.engine_scorer`: no compression
    penalty), or None. `strategies` are every strategy the request names (its own, and the reranker a search
    or adaptive sampling ends with); those that rank by the L2T path score (signal `l2t`) need C_k unless β = 0."""
    needing = next((s for s in strategies if s.signal == "l2t"), None)
    if needing is None or beta == 0:
        return None
    usable = ", ".join(s.name for s in STRATEGIES.values() if s.served and s.signal != "l2t")
    return InvalidRequest(
        f"strategy {needing.name!r} ranks by the L2T path score r_k = ΔI_k − β C_k, and this server scores on "
        f"its engine (scorer=engine), which cannot measure the compression penalty C_k: use one of {usable}, "
        "or set reward beta to 0 (the path score is then ΔI)",
        param="strategy",
    )


def get_strategy(name: str) -> Strategy:
    """The strategy called `name` or one of its synonyms (a clear error listing the choices otherwise)."""
    strategy = STRATEGIES.get(SYNONYMS.get(name, name))
    if strategy is None:
        raise InvalidRequest(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}", param="strategy")
    return strategy


def rank_candidates(
    candidates: Sequence[CandidateScore],
    strategy: str,
    reference: str | None = None,
    posterior: PosteriorSettings = POSTERIOR_SETTINGS,
) -> list[int]:
    """Indices of `candidates`, best first, under a reranking strategy of the registry (`posterior`:
    the settings of `posterior_vote`; the evaluation's tuning grid varies them)."""
    chosen = get_strategy(strategy)
    if chosen.rank is None:
        raise InvalidRequest(f"strategy {chosen.name!r} is a search, not a reranker", param="strategy")
    return chosen.rank(candidates, RankContext(reference, posterior))
