"""Selection from multi-target J: what each path says about every answer the pool gave.

A path's answer distribution q_i(a) is its probe probability J_i(a) of each pool answer a, normalised
over the answers (temperature τ: q ∝ J^(1/τ)). It is read at the answer cut, just before the path first
writes its own answer, so it measures what the reasoning implies rather than the copy of a written
answer (read after the answer, every path is sure of its own).

- `answer_posterior`: P(a) ∝ Σ_i w_i q_i(a), soft self-consistency: the paths' probability mass on each
  answer is pooled instead of counting one vote each (w_i uniform, or CISC-style confidence weights: a
  softmax of the paths' mean token log-probabilities at a temperature of `weight_temperature` times
  their spread in the pool, so scale-free like `weighted_vote`; CISC tunes that temperature on held-out
  data, and as it goes to 0 the vote becomes the single most confident path's distribution).
- `episode_progress`: per episode k of path i, the change of m_{i,k} = Σ_a P_{-i}(a) J_{i,k}(a), the
  path's probe probability (at the episode cuts) of the answers the *rest* of the pool supports
  (leave-one-out posterior), so a path is never its own judge (PAV: the prover must differ from the
  policy). It is the paper's ΔI_k with the target replaced by what the other paths found. J is not
  renormalised here: with a unanimous pool q would be 1 everywhere. Its minimum locates the first step
  that turned away from what the others found.
- `pool_value`: the same mass after a path's last episode, over every probed answer: what beam-prune
  prunes unfinished paths by (their probes decoded the answers).

Only the answers the given candidates state take part, so any subset of a scored pool (the evaluation's
N-blocks) gets exactly what scoring that subset alone would (a probe's J does not depend on which other
answers were probed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from l2t_core.answers import normalize_answer
from l2t_core.errors import InvalidRequest
from l2t_core.scoring import AnswerProbes, CandidateScore

WEIGHTINGS = ("uniform", "confidence")
READ_AT = ("answer", "final")
# Distinct pool answers multi-target J probes (the M): N = 8 paths give at most 8.
MAX_ANSWER_PROBES = 8


@dataclass(frozen=True)
class PosteriorSettings:
    temperature: float = 1.0  # τ in q ∝ J^(1/τ)
    weighting: str = "uniform"  # w_i: uniform | confidence (softmax of mean token log-prob)
    read_at: str = "answer"  # q_i read at the answer cut, or after the last episode ("final")
    weight_temperature: float = 1.0  # confidence weights: softmax of mean log-prob / (this × pool spread)

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise InvalidRequest(f"posterior temperature must be > 0, got {self.temperature}")
        if not self.weight_temperature > 0:
            raise InvalidRequest(f"posterior weight_temperature must be > 0, got {self.weight_temperature}")
        if self.weighting not in WEIGHTINGS:
            raise InvalidRequest(f"posterior weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.read_at not in READ_AT:
            raise InvalidRequest(f"posterior read_at must be one of {READ_AT}, got {self.read_at!r}")

    def final_log_j(self, probes: AnswerProbes) -> tuple[float, ...]:
        """The row of multi-target log J a path's answer distribution is read from."""
        return probes.before_answer if self.read_at == "answer" else probes.at_episode_ends[-1]


# What `posterior_vote` serves: the best of the grid on the arithmetic tune half (session 9, `string`
# suffix: 24.0% at N = 8, level with loglik; the settings before it, weight temperature 1 and τ 1, gave
# 22.5%; docs/decisions.md, docs/strategies.md). Sharper confidence weights move the vote toward the most confident
# paths' distributions, CISC's tuned temperature.
POSTERIOR_SETTINGS = PosteriorSettings(
    temperature=0.25, weighting="confidence", read_at="final", weight_temperature=0.25
)
# What `progress` and beam-prune's pool value weigh the rest of the pool with: the vote's settings before
# session 9 (22.0% on the first tune grid, against 8-12% for every setting read at the answer cut), kept
# because every progress and beam measurement so far was made with them and none was re-tuned.
PROGRESS_SETTINGS = PosteriorSettings(temperature=1.0, weighting="confidence", read_at="final")


def _softmax(values: Sequence[float], temperature: float = 1.0) -> list[float]:
    if not values:
        return []
    top = max(values)
    exps = [math.exp((v - top) / temperature) for v in values]
    total = math.fsum(exps)
    return [e / total for e in exps]


def _answer_columns(candidates: Sequence[CandidateScore]) -> dict[str, int]:
    """Normalised answer → its column in the candidates' probes, for the answers the candidates state."""
    probes = next((c.answer_probes for c in candidates if c.answer_probes is not None), None)
    if probes is None:
        if all(c.answer is None for c in candidates):
            return {}  # nothing to vote on (no answers, so none were probed): every answer has mass 0
        raise ValueError("posterior selection needs multi-target J (score with answer_probes > 0)")
    columns = {normalize_answer(a): i for i, a in enumerate(probes.answers)}
    stated = {normalize_answer(c.answer) for c in candidates if c.answer is not None}
    return {key: column for key, column in columns.items() if key in stated}


def answer_distribution(log_j: Sequence[float], columns: Sequence[int], temperature: float) -> list[float]:
    """q(a) over the given answer columns: the probe probabilities normalised, q ∝ J^(1/τ)."""
    return _softmax([log_j[c] for c in columns], temperature)


def path_weights(candidates: Sequence[CandidateScore], settings: PosteriorSettings) -> list[float]:
    """w_i: 1 each, or a softmax of the mean token log-probs at `weight_temperature` × their spread."""
    if settings.weighting == "uniform":
        return [1.0] * len(candidates)
    confidences = [c.mean_logprob for c in candidates]
    mean = math.fsum(confidences) / len(confidences)
    spread = math.sqrt(math.fsum((x - mean) ** 2 for x in confidences) / len(confidences))
    return _softmax(confidences, settings.weight_temperature * (spread if spread > 0 else 1.0))


def _pooled(distributions: Sequence[Sequence[float]], weights: Sequence[float]) -> list[float]:
    total = math.fsum(weights)
    width = len(distributions[0]) if distributions else 0
    if total <= 0:
        return [0.0] * width
    return [math.fsum(w * q[a] for w, q in zip(weights, distributions, strict=True)) / total for a in range(width)]


def answer_posterior(candidates: Sequence[CandidateScore], settings: PosteriorSettings) -> dict[str, float]:
    """P(a) for every answer the candidates state (normalised answer → probability)."""
    columns = _answer_columns(candidates)
    if not columns:
        return {}
    keys, cols = list(columns), list(columns.values())
    probed = [c for c in candidates if c.answer_probes is not None]
    q = [answer_distribution(settings.final_log_j(c.answer_probes), cols, settings.temperature) for c in probed]  # type: ignore[arg-type]
    return dict(zip(keys, _pooled(q, path_weights(probed, settings)), strict=True))


def posterior_order(candidates: Sequence[CandidateScore], settings: PosteriorSettings) -> list[int]:
    """Candidates best first: answers by posterior; within one, the most confident path (mean log-prob);
    unanswered candidates last."""
    posterior = answer_posterior(candidates, settings)
    order = sorted(range(len(candidates)), key=lambda i: -candidates[i].mean_logprob)
    answered = [i for i in order if candidates[i].answer is not None]
    # sorted is stable: equal posteriors keep the confidence order.
    answered.sort(key=lambda i: -posterior.get(normalize_answer(candidates[i].answer or ""), 0.0))
    return answered + [i for i in order if candidates[i].answer is None]


def _rest_of_pool(
    candidates: Sequence[CandidateScore], cols: Sequence[int], settings: PosteriorSettings
) -> list[list[float] | None]:
    """Per candidate, the leave-one-out posterior over the answer columns `cols`: the other probed paths'
    answer distributions pooled (None for a candidate without probes or without a probed neighbour)."""
    final = [
        answer_distribution(settings.final_log_j(c.answer_probes), cols, settings.temperature)
        if c.answer_probes
        else None
        for c in candidates
    ]
    weights = path_weights(candidates, settings)
    rests: list[list[float] | None] = []
    for i, candidate in enumerate(candidates):
        others = [j for j in range(len(candidates)) if j != i and final[j] is not None]
        if candidate.answer_probes is None or not others:
            rests.append(None)
            continue
        rests.append(_pooled([final[j] for j in others], [weights[j] for j in others]))  # type: ignore[misc]
    return rests


def _mass(rest: Sequence[float], log_j_row: Sequence[float], cols: Sequence[int]) -> float:
    """m = Σ_a P_rest(a) J(a): the probe probability of the answers the rest of the pool supports."""
    return math.fsum(p * math.exp(log_j_row[c]) for p, c in zip(rest, cols, strict=True))


def episode_progress(candidates: Sequence[CandidateScore], settings: PosteriorSettings) -> list[list[float] | None]:
    """Per candidate, per episode: the change in its mass on the answers the rest of the pool supports
    (None for a candidate without probes, or alone in its pool)."""
    cols = list(_answer_columns(candidates).values())
    if len(candidates) < 2 or not cols:
        return [None] * len(candidates)
    progress: list[list[float] | None] = []
    for candidate, rest in zip(candidates, _rest_of_pool(candidates, cols, settings), strict=True):
        if rest is None or candidate.answer_probes is None:
            progress.append(None)
            continue
        mass = [_mass(rest, row, cols) for row in candidate.answer_probes.at_episode_ends]
        progress.append([after - before for before, after in zip(mass, mass[1:], strict=False)])
    return progress


def pool_value(candidates: Sequence[CandidateScore], settings: PosteriorSettings) -> list[float]:
    """Per candidate, its mass after its last episode on the answers the rest of the pool supports, over
    every probed answer (beam-prune's unfinished paths state none: their probes decoded them). What
    beam-prune keeps or drops a partial path by: progress toward what the others found, never the path's
    own judgement of itself. 0 for a candidate without probes or without a probed neighbour."""
    probes = next((c.answer_probes for c in candidates if c.answer_probes is not None), None)
    if probes is None:
        return [0.0] * len(candidates)
    cols = list(range(len(probes.answers)))
    return [
        0.0 if rest is None or c.answer_probes is None else _mass(rest, c.answer_probes.at_episode_ends[-1], cols)
        for c, rest in zip(candidates, _rest_of_pool(candidates, cols, settings), strict=True)
    ]


def answer_probability(candidate: CandidateScore, answer: str) -> float | None:
    """J of `answer` after the candidate's last episode, from its multi-target probes (None: not probed)."""
    probes = candidate.answer_probes
    if probes is None:
        return None
    key = normalize_answer(answer)
    column = next((i for i, a in enumerate(probes.answers) if normalize_answer(a) == key), None)
    return None if column is None else math.exp(probes.at_episode_ends[-1][column])


def with_progress(candidates: Sequence[CandidateScore], settings: PosteriorSettings) -> list[CandidateScore]:
    """The candidates with `progress` filled in on every episode (left None where it is undefined)."""
    out = []
    for candidate, progress in zip(candidates, episode_progress(candidates, settings), strict=True):
        if progress is None:
            out.append(candidate)
            continue
        episodes = tuple(replace(e, progress=p) for e, p in zip(candidate.episodes, progress, strict=True))
        out.append(replace(candidate, episodes=episodes))
    return out
