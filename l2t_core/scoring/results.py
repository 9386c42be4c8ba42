"""What scoring returns: per-episode rewards with their spans, per-candidate path scores."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from l2t_core.reward import aggregate

# Why an engine-side score has no compression penalty: C_k is a gradient of the episode's log-likelihood
# with respect to the weights, which only a scorer holding the weights (the torch scorer) can take.
COMPRESSION_ABSENT = (
    "not measured: scoring ran on the generation engine (scorer=engine), which returns log-probabilities "
    "but no gradients, and C_k is a gradient with respect to the weights; rewards are ΔI_k when β = 0 "
    "and absent otherwise"
)


def episode_reward(fitting_gain: float, penalty: float | None, beta: float) -> float | None:
    """r_k = ΔI_k − β C_k; with C_k absent it is ΔI_k at β = 0 (C_k then weighs nothing) and absent otherwise."""
    if penalty is None:
        return fitting_gain if beta == 0 else None
    return fitting_gain - beta * penalty


@dataclass(frozen=True)
class EpisodeScore:
    index: int
    text: str
    start: int  # character span in the completion
    end: int
    token_start: int  # token span in the completion's tokens
    token_end: int
    j_before: float  # J_{k-1}
    j_after: float  # J_k
    log_j_before: float | None  # None when there is no target (J is then 0)
    log_j_after: float | None
    fitting_gain: float  # ΔI_k = J_k − J_{k-1}
    compression_penalty: float | None  # C_k; None when scored on the engine (`COMPRESSION_ABSENT` says why)
    reward: float | None  # r_k = ΔI_k − β C_k; None when C_k is absent and β ≠ 0
    progress: float | None = None  # change in mass on the answers the rest of the pool supports (selection)

    @property
    def n_tokens(self) -> int:
        return self.token_end - self.token_start

    @property
    def measured_penalty(self) -> float:
        """C_k where the caller only takes the torch scorer's scores (training, evaluation, path-score ranking)."""
        if self.compression_penalty is None:
            raise ValueError(f"episode {self.index} has no compression penalty: {COMPRESSION_ABSENT}")
        return self.compression_penalty

    @property
    def measured_reward(self) -> float:
        """r_k where the caller needs it (see `measured_penalty`)."""
        if self.reward is None:
            raise ValueError(f"episode {self.index} has no reward: {COMPRESSION_ABSENT}")
        return self.reward

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["n_tokens"] = self.n_tokens
        return out


@dataclass(frozen=True)
class AnswerProbes:
    """Multi-target J: the path's log-probability of each pool answer after the probe, at each probed cut.

    `cuts` are the K+1 episode cuts (token prefix lengths), then the answer cut (before the path first
    writes its own answer); `log_j[c][a]` is log J at cuts[c] for answers[a]."""

    answers: tuple[str, ...]
    cuts: tuple[int, ...]
    log_j: tuple[tuple[float, ...], ...]

    @property
    def at_episode_ends(self) -> tuple[tuple[float, ...], ...]:
        """log J of every answer at cuts 0..K (before episode 1, after each episode)."""
        return self.log_j[:-1]

    @property
    def before_answer(self) -> tuple[float, ...]:
        """log J of every answer at the answer cut."""
        return self.log_j[-1]


@dataclass(frozen=True)
class CandidateScore:
    text: str
    answer: str | None  # extracted final answer
    target: str | None  # the answer J was measured against
    score: float | None  # aggregate of the episode rewards (None when they are absent)
    episodes: tuple[EpisodeScore, ...]
    answer_start: int  # character offset of the answer part
    tagged: bool  # episodes came from <episode_k> tags (else fallback segmentation)
    n_tokens: int  # completion tokens
    mean_logprob: float  # mean token log-probability of the completion (the log-likelihood baseline)
    probe_tokens: int = 0  # tokens of the K+1 probe+target segments the scorer ran for this candidate
    token_ids: tuple[int, ...] = ()  # the completion's tokens as scored (training reuses them)
    token_logprobs: tuple[float, ...] = ()  # log p of each token under the scoring model (π_old in training)
    answer_probes: AnswerProbes | None = None  # multi-target J over the pool's answers (when asked for)

    def reweighed(self, beta: float, aggregation: str) -> CandidateScore:
        """The same measurements under another β and aggregation (no model call: r_k = ΔI_k − β C_k)."""
        episodes = tuple(
            replace(e, reward=episode_reward(e.fitting_gain, e.compression_penalty, beta)) for e in self.episodes
        )
        rewards = [e.reward for e in episodes]
        score = aggregate([r for r in rewards if r is not None], aggregation) if None not in rewards else None
        return replace(self, episodes=episodes, score=score)

    @property
    def measured_score(self) -> float:
        """The path score where the caller ranks by it (strategies that need C_k are refused without it)."""
        if self.score is None:
            raise ValueError(f"the candidate has no path score: {COMPRESSION_ABSENT}")
        return self.score

    @property
    def j_initial(self) -> float:
        return self.episodes[0].j_before if self.episodes else 0.0

    @property
    def total_fitting_gain(self) -> float:
        return math.fsum(e.fitting_gain for e in self.episodes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "target": self.target,
            "score": self.score,
            "tagged": self.tagged,
            "n_tokens": self.n_tokens,
            "mean_logprob": self.mean_logprob,
            "answer_start": self.answer_start,
            "episodes": [e.to_dict() for e in self.episodes],
        }


def scoring_tokens(prompt_tokens: int, scores: list[CandidateScore]) -> int:
    """Tokens one scorer call ran: the prompt once, every candidate, every probe segment."""
    return prompt_tokens + sum(s.n_tokens + s.probe_tokens for s in scores)
