"""Selection from multi-target J: pooled answer posterior, leave-one-out progress, subsets of a pool.

Hand-built scores (known log J per answer and cut) check the arithmetic exactly; the scorer itself is
held to the naive path in tests/scoring/test_packed_vs_naive.py."""

from __future__ import annotations

import math

import pytest

from l2t_core.errors import InvalidRequest
from l2t_core.scoring import AnswerProbes, CandidateScore, EpisodeScore
from l2t_core.search import PosteriorSettings, answer_posterior, episode_progress, rank_candidates, with_progress
from l2t_core.search.posterior import answer_probability, pool_value, posterior_order

ANSWERS = ("7", "8", "9")


def episode(index: int) -> EpisodeScore:
    return EpisodeScore(index, "", 0, 0, 0, 1, 0.0, 0.0, None, None, 0.0, 0.0, 0.0)


def candidate(answer: str | None, rows: list[list[float]], mean_logprob: float = -1.0) -> CandidateScore:
    """`rows`: J (not log) of each answer at cuts 0..K, then at the answer cut."""
    log_j = tuple(tuple(math.log(j) for j in row) for row in rows)
    probes = AnswerProbes(ANSWERS, tuple(range(len(rows))), log_j)
    episodes = tuple(episode(k + 1) for k in range(len(rows) - 2))
    return CandidateScore("", answer, answer, 0.0, episodes, 0, True, 1, mean_logprob, answer_probes=probes)


def test_the_posterior_pools_probability_mass_not_votes() -> None:
    # Two paths say 8 but their reasoning barely supports it; one says 7 and two others lean to 7.
    pool = [
        candidate("8", [[0.1, 0.1, 0.1], [0.4, 0.5, 0.1], [0.5, 0.4, 0.1]]),
        candidate("8", [[0.1, 0.1, 0.1], [0.4, 0.5, 0.1], [0.5, 0.4, 0.1]]),
        candidate("7", [[0.1, 0.1, 0.1], [0.8, 0.1, 0.1], [0.8, 0.1, 0.1]]),
        candidate("9", [[0.1, 0.1, 0.1], [0.6, 0.1, 0.3], [0.6, 0.1, 0.3]]),
    ]
    posterior = answer_posterior(pool, PosteriorSettings())
    assert sum(posterior.values()) == pytest.approx(1.0)
    assert max(posterior, key=posterior.__getitem__) == "7"
    assert rank_candidates(pool, "majority")[0] in (0, 1)
    assert rank_candidates(pool, "posterior_vote", posterior=PosteriorSettings())[0] == 2


def test_the_answer_cut_avoids_the_copy_read_after_the_answer() -> None:
    # After the last episode every path is sure of what it wrote; before writing it, they agree on 7.
    pool = [
        candidate("8", [[0.1, 0.1, 0.1], [0.01, 0.98, 0.01], [0.6, 0.3, 0.1]]),
        candidate("8", [[0.1, 0.1, 0.1], [0.01, 0.98, 0.01], [0.6, 0.3, 0.1]]),
        candidate("7", [[0.1, 0.1, 0.1], [0.98, 0.01, 0.01], [0.7, 0.2, 0.1]]),
    ]
    assert rank_candidates(pool, "posterior_vote", posterior=PosteriorSettings(read_at="answer"))[0] == 2
    final = PosteriorSettings(read_at="final")
    assert rank_candidates(pool, "posterior_vote", posterior=final)[0] in (0, 1)


def test_a_subset_sees_only_the_answers_it_states() -> None:
    pool = [
        candidate("7", [[0.1, 0.1, 0.1], [0.2, 0.1, 0.7], [0.2, 0.1, 0.7]]),
        candidate("8", [[0.1, 0.1, 0.1], [0.1, 0.3, 0.6], [0.1, 0.3, 0.6]]),
    ]
    posterior = answer_posterior(pool, PosteriorSettings())
    assert set(posterior) == {"7", "8"}  # 9 was probed for the whole pool, but nobody here says it
    assert posterior["7"] == pytest.approx((2 / 3 + 1 / 4) / 2)  # q renormalised over 7 and 8


def test_temperature_and_confidence_weights() -> None:
    pool = [
        candidate("7", [[0.1, 0.1, 0.1], [0.6, 0.4, 0.1], [0.6, 0.4, 0.1]], mean_logprob=-3.0),
        candidate("8", [[0.1, 0.1, 0.1], [0.45, 0.55, 0.1], [0.45, 0.55, 0.1]], mean_logprob=-0.1),
    ]
    uniform = answer_posterior(pool, PosteriorSettings())
    assert uniform["7"] > uniform["8"]
    assert answer_posterior(pool, PosteriorSettings(weighting="confidence"))["8"] > uniform["8"]
    sharp = answer_posterior(pool, PosteriorSettings(temperature=0.25))
    assert abs(sharp["7"] - 0.5) > abs(uniform["7"] - 0.5)
    with pytest.raises(InvalidRequest):
        PosteriorSettings(temperature=0.0)
    with pytest.raises(InvalidRequest):
        PosteriorSettings(weighting="votes")
    with pytest.raises(InvalidRequest):
        PosteriorSettings(weight_temperature=0.0)


def test_sharper_confidence_weights_tend_to_the_most_confident_path() -> None:
    # Path 3, the most confident (mean log-prob -0.20), leans to 8; path 0, nearly as confident (-0.21),
    # and two unsure paths lean to 7. With the pool's spread as the weights' temperature the three
    # together outweigh path 3; as the temperature falls the vote becomes path 3's own distribution,
    # which is loglik's choice.
    lean7 = [[0.1, 0.1, 0.1], [0.7, 0.3, 0.1], [0.7, 0.3, 0.1]]
    lean8 = [[0.1, 0.1, 0.1], [0.3, 0.7, 0.1], [0.3, 0.7, 0.1]]
    pool = [candidate("7", lean7, -0.21), candidate("7", lean7, -1.0), candidate("7", lean7, -1.0)]
    pool.append(candidate("8", lean8, -0.2))
    assert rank_candidates(pool, "posterior_vote", posterior=PosteriorSettings(weighting="confidence"))[0] == 0
    sharp = PosteriorSettings(weighting="confidence", weight_temperature=0.1)
    assert rank_candidates(pool, "posterior_vote", posterior=sharp)[0] == 3 == rank_candidates(pool, "loglik")[0]
    sharpest = PosteriorSettings(weighting="confidence", weight_temperature=0.001)
    assert answer_posterior(pool, sharpest)["8"] == pytest.approx(0.7, abs=2e-3)
    # uniform weights have no temperature to sharpen
    assert answer_posterior(pool, PosteriorSettings(weight_temperature=0.1)) == answer_posterior(
        pool, PosteriorSettings()
    )


def test_progress_is_measured_against_the_rest_of_the_pool() -> None:
    # Path 0: episode 1 moves toward 7 (what the others say), episode 2 away from it.
    pool = [
        candidate("7", [[0.3, 0.3, 0.3], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]]),
        candidate("7", [[0.3, 0.3, 0.3], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]]),
        candidate("7", [[0.3, 0.3, 0.3], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]]),
    ]
    progress = episode_progress(pool, PosteriorSettings())
    assert progress[0] == pytest.approx([0.5, -0.6])  # the rest say 7: the change of J(7) itself
    scored = with_progress(pool, PosteriorSettings())
    assert [e.progress for e in scored[0].episodes] == progress[0]
    assert min(range(2), key=lambda k: progress[0][k]) == 1  # the first error is episode 2
    split = [
        candidate("7", [[0.3, 0.3, 0.3], [0.2, 0.6, 0.1], [0.2, 0.6, 0.1]]),
        candidate("7", [[0.3, 0.3, 0.3], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]]),
        candidate("8", [[0.3, 0.3, 0.3], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]]),
    ]
    rest = answer_posterior(split[1:], PosteriorSettings())
    expected = rest["7"] * (0.2 - 0.3) + rest["8"] * (0.6 - 0.3)
    assert episode_progress(split, PosteriorSettings())[0] == pytest.approx([expected])
    assert episode_progress(pool[:1], PosteriorSettings()) == [None]  # alone: no rest of the pool


def test_pool_value_is_the_mass_on_what_the_other_paths_lean_to() -> None:
    # Unfinished paths (no stated answer; the columns are their probe answers). Path 0 is the surest of
    # its own answer, 8, but the others lean to 7: it has the least value, so beam-prune drops it first.
    live = [
        candidate(None, [[0.3, 0.3, 0.3], [0.2, 0.7, 0.1], [0.2, 0.7, 0.1]]),
        candidate(None, [[0.3, 0.3, 0.3], [0.8, 0.1, 0.1], [0.8, 0.1, 0.1]]),
        candidate(None, [[0.3, 0.3, 0.3], [0.7, 0.2, 0.1], [0.7, 0.2, 0.1]]),
    ]
    settings = PosteriorSettings(weighting="uniform", read_at="final")
    # path 0's rest: the mean of [.8, .1, .1] and [.7, .2, .1] -> [.75, .15, .1]; its J: [.2, .7, .1]
    assert pool_value(live, settings) == pytest.approx([0.265, 0.415, 0.44])
    assert answer_probability(live[0], "8") == pytest.approx(0.7)
    assert answer_probability(live[0], "10") is None  # not probed
    assert pool_value(live[:1], settings) == [0.0]  # alone: no rest of the pool


def test_posterior_needs_multi_target_j() -> None:
    plain = CandidateScore("", "7", "7", 0.0, (), 0, True, 1, -1.0)
    with pytest.raises(ValueError, match="answer_probes"):
        posterior_order([plain, plain], PosteriorSettings())


def test_a_pool_without_answers_has_no_posterior_and_no_progress() -> None:
    silent = [CandidateScore("", None, None, 0.0, (episode(1),), 0, True, 1, lp) for lp in (-2.0, -0.5)]
    assert answer_posterior(silent, PosteriorSettings()) == {}
    assert posterior_order(silent, PosteriorSettings()) == [1, 0]  # unanswered: the most confident first
    assert episode_progress(silent, PosteriorSettings()) == [None, None]
