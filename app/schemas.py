"""Pydantic models shared by several API surfaces: messages, reward overrides, scored candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from app.core.config import Settings
from app.core.errors import APIError
from l2t_core.engines import SamplingParams
from l2t_core.episodes import PROMPT_FORMATS
from l2t_core.pipeline import RankedCandidate, Timings, Usage
from l2t_core.reward import AGGREGATIONS, NORMALISATIONS, REQUEST_TARGETS, RewardConfig
from l2t_core.scoring import CandidateScore
from l2t_core.search import SERVED_STRATEGIES, SYNONYMS


def registry_choice(names: Sequence[str], synonyms: Mapping[str, str] | None = None) -> Any:
    """A string field whose choices come from a registry (an enum in the OpenAPI schema); synonyms are
    accepted and replaced by their canonical name."""
    aliases = dict(synonyms or {})

    def canonical(value: Any) -> Any:
        return aliases.get(value, value) if isinstance(value, str) else value

    return Annotated[Literal.__getitem__(tuple(names)), BeforeValidator(canonical)]


if TYPE_CHECKING:
    StrategyName = str
    PromptFormatName = str
    AggregationName = str
    TargetName = str
    NormalisationName = str
else:
    StrategyName = registry_choice(SERVED_STRATEGIES, SYNONYMS)
    PromptFormatName = registry_choice(tuple(PROMPT_FORMATS))
    AggregationName = registry_choice(AGGREGATIONS)
    TargetName = registry_choice(REQUEST_TARGETS)
    NormalisationName = registry_choice(NORMALISATIONS)


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class RewardOverrides(BaseModel):
    """Per-request reward settings; omitted fields keep the server's defaults."""

    target: TargetName = Field("self", description="J's target answer when no reference is given")
    reference: str | None = Field(None, max_length=1000, description="reference answer: J is measured against it")
    alpha: float | None = Field(None, ge=0)
    beta: float | None = Field(None, ge=0)
    aggregation: AggregationName | None = None
    compression_normalisation: NormalisationName | None = Field(None, description="C_k raw or per episode token")

    def reward_config(self, base: RewardConfig) -> RewardConfig:
        return base.with_overrides(
            target=self.target,
            alpha=self.alpha,
            beta=self.beta,
            aggregation=self.aggregation,
            compression_normalisation=self.compression_normalisation,
        )


class EpisodeOut(BaseModel):
    index: int
    text: str
    start: int
    end: int
    token_start: int
    token_end: int
    n_tokens: int
    j_before: float
    j_after: float
    log_j_before: float | None
    log_j_after: float | None
    fitting_gain: float
    compression_penalty: float
    reward: float


class CandidateOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    index: int = Field(description="position in generation (or input) order")
    text: str
    answer: str | None
    target: str | None
    score: float
    tagged: bool
    n_tokens: int
    mean_logprob: float
    answer_start: int
    finish_reason: str | None = None
    episodes: list[EpisodeOut]

    @classmethod
    def from_score(cls, index: int, score: CandidateScore, finish_reason: str | None = None) -> CandidateOut:
        return cls.model_validate(
            {"index": index, "text": score.text, "finish_reason": finish_reason, **score.to_dict()}
        )

    @classmethod
    def from_ranked(cls, ranked: RankedCandidate) -> CandidateOut:
        return cls.from_score(ranked.index, ranked.score, ranked.finish_reason)


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    scoring_tokens: int
    total_tokens: int

    @classmethod
    def from_usage(cls, usage: Usage) -> UsageOut:
        return cls(**usage.__dict__)


class TimingsOut(BaseModel):
    generate_ms: float
    score_ms: float

    @classmethod
    def from_timings(cls, timings: Timings) -> TimingsOut:
        return cls(**timings.__dict__)


def check_text_limit(text: str, limit: int, param: str) -> None:
    if len(text) > limit:
        raise APIError(400, f"{param} is {len(text)} characters; the limit is {limit}", param=param, code="too_long")


def sampling_params(
    settings: Settings,
    n: int,
    max_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
    stop: tuple[str, ...] = (),
) -> SamplingParams:
    """Engine sampling parameters within the server's limits (400 with the limit named otherwise)."""
    if n > settings.max_n:
        raise APIError(400, f"n={n} exceeds this server's limit of {settings.max_n}", param="n", code="too_large")
    if max_tokens > settings.max_tokens_limit:
        raise APIError(
            400,
            f"max_tokens={max_tokens} exceeds the limit of {settings.max_tokens_limit}",
            param="max_tokens",
            code="too_large",
        )
    return SamplingParams(n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stop)
