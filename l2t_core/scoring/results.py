"""What scoring returns: per-episode rewards with their spans, per-candidate path scores."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from l2t_core.reward import aggregate


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
    compression_penalty: float  # C_k
    reward: float  # r_k = ΔI_k − β C_k
    progress: float | None = None  # change in mass on the answers the rest of the pool supports (selection)

    @property
    def n_tokens(self) -> int:
        return self.token_end - self.token_start

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
    score: float  # aggregate of the episode rewards
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
        episodes = tuple(replace(e, reward=e.fitting_gain - beta * e.compression_penalty) for e in self.episodes)
        return replace(self, episodes=episodes, score=aggregate([e.reward for e in episodes], aggregation))

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
