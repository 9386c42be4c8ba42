"""POST /generate: sample N reasoning paths, score every episode, return the best (and optionally all)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.core.config import Settings
from app.schemas import (
    CandidateOut,
    ChatMessage,
    LogitBias,
    Penalty,
    PromptFormatName,
    RequestBody,
    RerankerName,
    RewardOverrides,
    StrategyName,
    TimingsOut,
    UsageOut,
    exactly_one,
    logit_bias_pairs,
    refuse_null,
)
from app.serving import Serving
from l2t_core.config_flags import field_help
from l2t_core.engines.base import SEED_MAX, SEED_MIN, SamplingParams
from l2t_core.pipeline import PipelineResult
from l2t_core.request import GenerationRequest
from l2t_core.search import AdaptiveConfig, BeamPruneConfig
from l2t_core.search.adaptive import STOP_RULES
from l2t_core.search.beam_prune import PARTIAL_TARGETS, VALUES

_B = BeamPruneConfig  # the defaults live there; a field left out keeps its default
_S = SamplingParams  # the sampling defaults live there


class BeamOptions(RequestBody):
    """beam_prune settings; omitted fields keep `BeamPruneConfig`'s defaults (n is the starting width)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    keep_ratio: Annotated[float, Field(gt=0, le=1)] | SkipJsonSchema[None] = Field(
        None, description=f"live paths kept per round ({_B.keep_ratio})"
    )
    min_live: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        None, description=f"never prune below this many live paths ({_B.min_live})"
    )
    expand: bool | SkipJsonSchema[None] = Field(
        None, description=f"refill pruned slots with copies of the best ({_B.expand})"
    )
    episode_tokens: Annotated[int, Field(ge=1, le=4096)] | SkipJsonSchema[None] = Field(
        None, description=f"one episode's cap ({_B.episode_tokens})"
    )
    max_episodes: Annotated[int, Field(ge=1, le=64)] | SkipJsonSchema[None] = Field(
        None, description=f"search rounds ({_B.max_episodes})"
    )
    token_budget: Annotated[int, Field(ge=BeamPruneConfig.answer_tokens + 1)] | SkipJsonSchema[None] = Field(
        None,
        description="generated tokens for the whole search (default n*max_tokens, at least one step)",
    )
    partial_target: Literal[PARTIAL_TARGETS] | SkipJsonSchema[None] = Field(  # type: ignore[valid-type]
        None, description=f"J's target for unfinished paths ({_B.partial_target})"
    )
    value: Literal[VALUES] | SkipJsonSchema[None] = Field(  # type: ignore[valid-type]
        None,
        description=f"what live paths are pruned by: their L2T score, or their probability of the answers the "
        f"rest of the pool supports ({_B.value})",
    )
    exit_confidence: Annotated[float, Field(gt=0, le=1)] | SkipJsonSchema[None] = Field(
        None, description="a live path exits with its probe answer once J of that answer reaches this (off)"
    )


_A = AdaptiveConfig


class AdaptiveOptions(RequestBody):
    """adaptive settings; omitted fields keep `AdaptiveConfig`'s defaults (n is the most it draws)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    round_size: Annotated[int, Field(ge=1, le=64)] | SkipJsonSchema[None] = Field(
        None, description=f"samples per round ({_A.round_size})"
    )
    stop: Literal[STOP_RULES] | SkipJsonSchema[None] = Field(  # type: ignore[valid-type]
        None, description=f"stopping rule: a confident sample, or a decided vote ({_A.stop})"
    )
    min_logprob: Annotated[float, Field(le=0)] | SkipJsonSchema[None] = Field(
        None, description=f"confident: a sample's mean token log-prob that ends sampling ({_A.min_logprob})"
    )
    confidence: Annotated[float, Field(ge=0.5, lt=1)] | SkipJsonSchema[None] = Field(
        None,
        description=f"vote: stop once P(the leading answer is the likelier one) reaches this ({_A.confidence})",
    )
    select: RerankerName | SkipJsonSchema[None] = Field(
        None, description=f"the reranker that chooses among the samples drawn ({_A.select})"
    )


class GenerateRequest(RewardOverrides):
    # The schema states the rules the validator below enforces: exactly one input, and `beam` only
    # with strategy beam_prune (JSON null is refused for these fields, so absent is the only "none").
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "oneOf": [{"required": ["prompt"]}, {"required": ["messages"]}],
            "dependentSchemas": {
                "beam": {"properties": {"strategy": {"const": "beam_prune"}}, "required": ["strategy"]},
                "adaptive": {"properties": {"strategy": {"const": "adaptive"}}, "required": ["strategy"]},
            },
        },
    )

    prompt: str | SkipJsonSchema[None] = Field(
        None, json_schema_extra={"pattern": r"\S"}, description="the question; the prompt format is applied to it"
    )
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | SkipJsonSchema[None] = Field(
        None, description="a chat instead of a question"
    )
    n: int = Field(8, ge=1, le=64)
    max_tokens: int = Field(_S.max_tokens, ge=1, description=field_help(SamplingParams, "max_tokens"))
    temperature: float = Field(_S.temperature, ge=0, le=2, description=field_help(SamplingParams, "temperature"))
    top_p: float = Field(_S.top_p, gt=0, le=1, description=field_help(SamplingParams, "top_p"))
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX, description=field_help(SamplingParams, "seed"))
    presence_penalty: Penalty = Field(_S.presence_penalty, description=field_help(SamplingParams, "presence_penalty"))
    frequency_penalty: Penalty = Field(
        _S.frequency_penalty, description=field_help(SamplingParams, "frequency_penalty")
    )
    logit_bias: LogitBias = Field(
        default_factory=dict, description='token id (a string, as OpenAI takes it: "50256") -> bias in [-100, 100]'
    )
    prompt_format: PromptFormatName | SkipJsonSchema[None] = Field(
        None, description="how the question is asked (the server's default when omitted)"
    )
    strategy: StrategyName | SkipJsonSchema[None] = Field(
        None, description="how the answer is chosen (the server's default when omitted)"
    )
    beam: BeamOptions | SkipJsonSchema[None] = Field(None, description="beam_prune settings (n is the starting width)")
    adaptive: AdaptiveOptions | SkipJsonSchema[None] = Field(
        None, description="adaptive settings (n is the most samples it draws)"
    )
    progress: bool = Field(
        False, description="fill in every episode's progress (multi-target J over the pool's answers; costs probes)"
    )
    return_candidates: bool = False

    @field_validator("prompt", "messages", "beam", "adaptive", mode="before")
    @classmethod
    def not_null(cls, value: Any) -> Any:
        return refuse_null(value)

    @model_validator(mode="after")
    def one_input(self) -> GenerateRequest:
        exactly_one("prompt", self.prompt, "messages", self.messages)
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("'prompt' is empty")
        if self.beam is not None and self.strategy != "beam_prune":
            raise ValueError("'beam' settings need strategy 'beam_prune'")
        if self.adaptive is not None and self.strategy != "adaptive":
            raise ValueError("'adaptive' settings need strategy 'adaptive'")
        return self

    def to_core(self, serving: Serving) -> GenerationRequest:
        """The core request: the prompt rendered, sampling within the server's limits, the server's defaults
        where the body names none (n and max_tokens left out are clamped to the limits, not refused)."""
        pipeline = serving.pipeline
        messages = [m.model_dump() for m in self.messages] if self.messages else None
        prompt = pipeline.prompt(self.prompt, messages, self.prompt_format)
        defaulted = {"n", "max_tokens"} - self.model_fields_set
        sampling = serving.sampling(
            self.n,
            self.max_tokens,
            self.temperature,
            self.top_p,
            self.seed,
            defaulted=defaulted,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logit_bias=logit_bias_pairs(self.logit_bias),
        )
        return GenerationRequest.build(
            prompt,
            sampling,
            self.strategy or serving.settings.strategy,
            self.reward_config(pipeline.reward_config),
            self.reference,
            beam=self.beam.model_dump(exclude_none=True) if self.beam else None,
            adaptive=self.adaptive.model_dump(exclude_none=True) if self.adaptive else None,
            progress=self.progress,
        )


class GenerateResponse(BaseModel):
    id: str
    object: Literal["l2t.generation"] = "l2t.generation"
    created: int
    model: str
    scorer_model: str = Field(description="the model that measured J, rewards and log-probs")
    compression_penalty_absent: str | None = Field(
        None, description="why every compression_penalty is null (the server scores on its engine); null otherwise"
    )
    strategy: str
    prompt_format: str | None
    chosen: CandidateOut
    candidates: list[CandidateOut] | None = Field(None, description="all N, best first (return_candidates)")
    samples_drawn: int | None = Field(None, description="candidates sampled (adaptive may stop before n)")
    usage: UsageOut
    timings: TimingsOut

    @classmethod
    def from_result(
        cls, result: PipelineResult, request_id: str, settings: Settings, return_candidates: bool
    ) -> GenerateResponse:
        ranked = [CandidateOut.from_ranked(r) for r in result.ranked]
        return cls(
            id=request_id,
            created=int(time.time()),
            model=settings.model_id,
            scorer_model=settings.scorer_model_id,
            compression_penalty_absent=settings.compression_absent,
            strategy=result.strategy,
            prompt_format=result.prompt_format,
            chosen=ranked[0],
            candidates=ranked if return_candidates else None,
            samples_drawn=result.samples_drawn,
            usage=UsageOut.from_usage(result.usage),
            timings=TimingsOut.from_timings(result.timings),
        )
