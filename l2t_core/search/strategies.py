"""The strategy registry: every way the pipeline can choose an answer, declared once.

A strategy either reranks a sampled, scored pool (`kind="rerank"`), samples in rounds until the answer
is decided (`kind="adaptive"`), or searches episode by episode (`kind="search"`). `signal` says what it
reads: nothing but the answers (`answers`), the sampled tokens' log-probabilities (`logprobs`, one plain
forward), the L2T path score (`l2t`, the K+1 answer probes and the compression term per candidate), or
multi-target J (`posterior`: every pool answer probed at every cut, l2t_core/search/posterior.py).
The HTTP schemas, the OpenAI extension, `l2t generate` and `l2t eval` all take their choices from here,
so a strategy added once is reachable everywhere.
L2T rewards are computed and returned for every candidate whatever the strategy; `signal` is what the
choice depends on (and what the evaluation charges it for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from l2t_core.errors import InvalidRequest


@dataclass(frozen=True)
class Strategy:
    name: str
    help: str
    kind: Literal["rerank", "adaptive", "search"]
    signal: Literal["none", "answers", "logprobs", "l2t", "posterior"]
    served: bool = True  # False: evaluation only (needs the gold answer)
    synonyms: tuple[str, ...] = ()

    @property
    def needs_answer_probes(self) -> bool:
        """Whether scoring must measure multi-target J over the pool's answers for this strategy."""
        return self.signal == "posterior"


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("first", "the first sample (the single-sample baseline)", "rerank", "none"),
        Strategy("majority", "the most frequent answer (self-consistency voting)", "rerank", "answers"),
        Strategy("loglik", "the highest mean token log-probability", "rerank", "logprobs"),
        Strategy(
            "confidence", "DeepConf lowest group confidence: the path's shakiest 16-token window", "rerank", "logprobs"
        ),
        Strategy(
            "best_of_n", "the highest L2T path score (episode rewards aggregated)", "rerank", "l2t", True, ("l2t_best",)
        ),
        Strategy(
            "weighted_vote",
            "answers voted with softmax weights of their paths' L2T scores",
            "rerank",
            "l2t",
            True,
            ("l2t_vote",),
        ),
        Strategy(
            "posterior_vote",
            "answers weighted by the paths' probe probability of every pool answer, read before each path "
            "writes its own (soft self-consistency over multi-target J)",
            "rerank",
            "posterior",
        ),
        Strategy(
            "adaptive",
            "sample in rounds and stop once the vote has decided the answer (adaptive consistency), "
            "then choose among the samples drawn",
            "adaptive",
            "answers",
        ),
        Strategy("oracle", "a sample whose answer matches the reference (pass@N)", "rerank", "answers", served=False),
        Strategy(
            "beam_prune",
            "episode-level search: N paths pruned by L2T score after each episode, within a token budget",
            "search",
            "l2t",
        ),
    )
}
SYNONYMS = {synonym: s.name for s in STRATEGIES.values() for synonym in s.synonyms}
SERVED_STRATEGIES = tuple(name for name, s in STRATEGIES.items() if s.served)
RERANKERS = tuple(name for name, s in STRATEGIES.items() if s.kind == "rerank")
# Strategies the evaluation measures over cached pools (adaptive replays its stopping rule on one).
POOL_STRATEGIES = tuple(name for name, s in STRATEGIES.items() if s.kind in ("rerank", "adaptive"))
# Chosen by measurement on the tune halves (never worse than voting): docs/decisions.md.
DEFAULT_STRATEGY = "loglik"


def get_strategy(name: str) -> Strategy:
    """The strategy called `name` or one of its synonyms (a clear error listing the choices otherwise)."""
    strategy = STRATEGIES.get(SYNONYMS.get(name, name))
    if strategy is None:
        raise InvalidRequest(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}", param="strategy")
    return strategy
