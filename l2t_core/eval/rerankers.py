"""Rerankers evaluated over cached pools at pool sizes N ≤ the pool: every disjoint block of N candidates
is one draw, and a problem's accuracy is the mean over its blocks (more draws, same candidates)."""

from __future__ import annotations

from dataclasses import dataclass

from l2t_core.answers import answers_match
from l2t_core.eval.pool import ScoredPool
from l2t_core.search import (
    POSTERIOR_SETTINGS,
    AdaptiveConfig,
    PosteriorSettings,
    get_strategy,
    rank_candidates,
    samples_needed,
)


@dataclass(frozen=True)
class Outcome:
    """One method at one N, per problem (in problem order)."""

    method: str
    n: int
    correct: list[float]
    tokens: list[float]  # generated tokens the method spent
    samples: list[float]  # candidates the method drew (N, fewer for adaptive)
    scored_tokens: list[float]  # completion (+ probe) tokens a scoring pass ran over; 0 for vote/first
    scoring_s: list[float] | None  # L2T scoring seconds (share of the pool's measured time)


def correctness(scored: list[ScoredPool]) -> list[list[bool]]:
    return [[answers_match(s.answer, p.pool.problem.answer) for s in p.scores] for p in scored]


def blocks(pool_size: int, n: int) -> list[list[int]]:
    if not 1 <= n <= pool_size:
        raise ValueError(f"N={n} does not fit a pool of {pool_size}")
    return [list(range(start, start + n)) for start in range(0, pool_size - n + 1, n)]


def evaluate(
    scored: list[ScoredPool],
    table: list[list[bool]],
    method: str,
    n: int,
    adaptive: AdaptiveConfig | None = None,
    posterior: PosteriorSettings = POSTERIOR_SETTINGS,
) -> Outcome:
    """`method` is a pool strategy of the registry; it is charged for the signal it reads: the L2T
    scorer (candidates + probes) for `l2t` and `posterior`, one plain forward over the candidates for
    `logprobs`. `adaptive` replays its stopping rule over each block in generation order, then ranks the
    samples it drew with its `select` reranker (`adaptive` settings: the defaults when None)."""
    strategy = get_strategy(method)
    rounds = (adaptive or AdaptiveConfig()) if strategy.kind == "adaptive" else None
    ranker = get_strategy(rounds.select) if rounds is not None else strategy
    signal = ranker.signal
    correct, tokens, samples, scored_tokens, seconds = [], [], [], [], []
    for pool, right in zip(scored, table, strict=True):
        draws = blocks(len(pool.scores), n)
        hits, spent, drawn, ran = 0.0, 0.0, 0.0, 0.0
        for block in draws:
            if rounds is not None:
                answers = [pool.scores[i].answer for i in block]
                block = block[: samples_needed(answers, [pool.scores[i].mean_logprob for i in block], n, rounds)]
                if rounds.stop == "confident":  # each round's samples were scored to read their log-probs
                    ran += sum(pool.scores[i].n_tokens for i in block)
            candidates = [pool.scores[i] for i in block]
            reference = pool.pool.problem.answer if ranker.name == "oracle" else None
            chosen = block[rank_candidates(candidates, ranker.name, reference, posterior)[0]]
            hits += right[chosen]
            used = [block[0]] if ranker.name == "first" else block
            spent += pool.pool.generated_tokens(used)
            drawn += len(used)
            if signal in ("l2t", "posterior"):
                ran += sum(pool.scores[i].n_tokens + pool.scores[i].probe_tokens for i in block)
            elif signal == "logprobs":
                ran += sum(pool.scores[i].n_tokens for i in block)
        correct.append(hits / len(draws))
        tokens.append(spent / len(draws))
        samples.append(drawn / len(draws))
        scored_tokens.append(ran / len(draws))
        seconds.append(pool.score_s * n / len(pool.scores))
    timed = signal in ("l2t", "posterior")
    return Outcome(strategy.name, n, correct, tokens, samples, scored_tokens, seconds if timed else None)
