"""Rerankers on hand-built pools whose right choice is known."""

from __future__ import annotations

import math

import pytest

from l2t_core.scoring import CandidateScore, EpisodeScore
from l2t_core.search import STRATEGIES, get_strategy, lowest_group_confidence, rank_candidates


def candidate(answer: str | None, score: float = 0.0, logprobs: tuple[float, ...] = (-1.0,)) -> CandidateScore:
    episode = EpisodeScore(1, "step", 0, 4, 0, 1, 0.1, 0.2, None, None, 0.1, 0.0, score)
    return CandidateScore(
        text=f"\\boxed{{{answer}}}" if answer else "no answer",
        answer=answer,
        target=answer,
        score=score,
        episodes=(episode,),
        answer_start=0,
        tagged=True,
        n_tokens=len(logprobs),
        mean_logprob=sum(logprobs) / len(logprobs),
        token_logprobs=logprobs,
    )


def test_first_keeps_generation_order() -> None:
    pool = [candidate("1", 0.0), candidate("2", 5.0)]
    assert rank_candidates(pool, "first") == [0, 1]


def test_loglik_prefers_the_likelier_text() -> None:
    pool = [candidate("1", logprobs=(-2.0, -2.0)), candidate("2", logprobs=(-0.5, -0.7))]
    assert rank_candidates(pool, "loglik")[0] == 1


def test_majority_picks_the_most_frequent_normalised_answer() -> None:
    pool = [candidate("7"), candidate("12"), candidate("12.0"), candidate(None), candidate("7.5")]
    ranking = rank_candidates(pool, "majority")
    assert ranking[:2] == [1, 2]
    assert ranking[-1] == 3  # unanswered last


def test_l2t_best_is_argmax_path_score_and_aliases_agree() -> None:
    pool = [candidate("1", 0.2), candidate("2", 0.9), candidate("3", -0.4)]
    assert rank_candidates(pool, "best_of_n") == [1, 0, 2]
    assert rank_candidates(pool, "l2t_best") == rank_candidates(pool, "best_of_n")
    assert get_strategy("l2t_vote").name == "weighted_vote"


def test_weighted_vote_lets_strong_paths_outvote_a_weak_majority() -> None:
    # three weak paths say 5, two strong paths say 6: the score-weighted vote must choose 6
    pool = [candidate("5", -3.0), candidate("5", -3.1), candidate("5", -2.9), candidate("6", 2.0), candidate("6", 2.2)]
    ranking = rank_candidates(pool, "l2t_vote")
    assert pool[ranking[0]].answer == "6"
    assert ranking[0] == 4  # within the answer, the higher score first
    assert pool[rank_candidates(pool, "majority")[0]].answer == "5"


def test_confidence_prefers_the_path_without_a_shaky_stretch() -> None:
    steady = tuple([-0.6] * 40)
    # higher mean log-prob, but one window of near-random tokens in the middle
    shaky = tuple([-0.05] * 60 + [-2.0] * 16 + [-0.05] * 60)
    assert sum(shaky) / len(shaky) > sum(steady) / len(steady)
    pool = [candidate("1", logprobs=shaky), candidate("2", logprobs=steady)]
    assert rank_candidates(pool, "confidence")[0] == 1
    assert rank_candidates(pool, "loglik")[0] == 0


def test_lowest_group_confidence_matches_a_brute_force_window_minimum() -> None:
    values = [-0.3, -2.0, -0.1, -0.5, -3.0, -0.2, -0.05, -1.0]
    for window in (1, 3, 5, 8, 20):
        width = min(window, len(values))
        brute = min(sum(values[i : i + width]) / width for i in range(len(values) - width + 1))
        assert math.isclose(lowest_group_confidence(values, window), brute, rel_tol=1e-12)
    assert lowest_group_confidence([]) == -math.inf


def test_oracle_puts_a_correct_candidate_first_and_needs_the_reference() -> None:
    pool = [candidate("3"), candidate("4"), candidate("42")]
    assert rank_candidates(pool, "oracle", reference="42.0")[0] == 2
    with pytest.raises(ValueError, match="reference"):
        rank_candidates(pool, "oracle")


def test_unknown_strategy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        rank_candidates([candidate("1")], "best")
    assert "confidence" in STRATEGIES


def test_reweighed_recomputes_rewards_and_path_score() -> None:
    base = candidate("1", 0.0)
    e1 = EpisodeScore(1, "a", 0, 1, 0, 2, 0.1, 0.3, None, None, 0.2, 0.5, 0.2 - 0.6 * 0.5)
    e2 = EpisodeScore(2, "b", 1, 2, 2, 4, 0.3, 0.9, None, None, 0.6, 0.1, 0.6 - 0.6 * 0.1)
    from dataclasses import replace

    scored = replace(base, episodes=(e1, e2))
    zero = scored.reweighed(0.0, "sum")
    assert math.isclose(zero.score, 0.8)
    assert math.isclose(scored.reweighed(1.0, "min").score, min(0.2 - 0.5, 0.6 - 0.1))
    assert math.isclose(scored.reweighed(2.0, "last").episodes[1].reward, 0.6 - 0.2)
