"""Rerankers evaluated over cached pools at pool sizes N ≤ the pool: every disjoint block of N candidates
is one draw, and a problem's accuracy is the mean over its blocks (more draws, same candidates)."""

from __future__ import annotations

from dataclasses import dataclass

from l2t_core.answers import answers_match
from l2t_core.eval.pool import ScoredPool
from l2t_core.search import get_strategy, rank_candidates


@dataclass(frozen=True)
class Outcome:
    """One method at one N, per problem (in problem order)."""

    method: str
    n: int
    correct: list[float]
    tokens: list[float]  # generated tokens the method spent
    scored_tokens: list[float]  # completion (+ probe) tokens a scoring pass ran over; 0 for vote/first
    scoring_s: list[float] | None  # L2T scoring seconds (share of the pool's measured time)


def correctness(scored: list[ScoredPool]) -> list[list[bool]]:
    return [[answers_match(s.answer, p.pool.problem.answer) for s in p.scores] for p in scored]


def blocks(pool_size: int, n: int) -> list[list[int]]:
    if not 1 <= n <= pool_size:
        raise ValueError(f"N={n} does not fit a pool of {pool_size}")
    return [list(range(start, start + n)) for start in range(0, pool_size - n + 1, n)]


def evaluate(scored: list[ScoredPool], table: list[list[bool]], method: str, n: int) -> Outcome:
    """`method` is a reranker of the strategy registry; it is charged for the signal it reads: the L2T
    scorer (candidates + probes) for `l2t`, one plain forward over the candidates for `logprobs`."""
    signal = get_strategy(method).signal
    method = get_strategy(method).name
    correct, tokens, scored_tokens, seconds = [], [], [], []
    for pool, right in zip(scored, table, strict=True):
        draws = blocks(len(pool.scores), n)
        hits, spent, ran = 0.0, 0.0, 0.0
        for block in draws:
            candidates = [pool.scores[i] for i in block]
            reference = pool.pool.problem.answer if method == "oracle" else None
            chosen = block[rank_candidates(candidates, method, reference)[0]]
            hits += right[chosen]
            spent += pool.pool.generated_tokens([block[0]] if method == "first" else block)
            if signal == "l2t":
                ran += sum(pool.scores[i].n_tokens + pool.scores[i].probe_tokens for i in block)
            elif signal == "logprobs":
                ran += sum(pool.scores[i].n_tokens for i in block)
        correct.append(hits / len(draws))
        tokens.append(spent / len(draws))
        scored_tokens.append(ran / len(draws))
        seconds.append(pool.score_s * n / len(pool.scores))
    return Outcome(method, n, correct, tokens, scored_tokens, seconds if signal == "l2t" else None)
