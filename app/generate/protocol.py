"""POST /generate: sample N reasoning paths, score every episode, return the best (and optionally all)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.schemas import CandidateOut, ChatMessage, RequestBody, RewardOverrides, TimingsOut, UsageOut
from l2t_core.engines.base import SEED_MAX, SEED_MIN
from l2t_core.search import BeamPruneConfig


class BeamOptions(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True)

    keep_ratio: float = Field(0.5, gt=0, le=1, description="fraction of live paths kept after each round")
    min_live: int = Field(2, ge=1, description="never prune below this many live paths")
    expand: bool = Field(False, description="refill pruned slots with copies of the best survivors")
    episode_tokens: int = Field(64, ge=1, le=4096, description="token cap of one episode")
    max_episodes: int = Field(8, ge=1, le=64, description="search rounds")
    token_budget: int | SkipJsonSchema[None] = Field(
        None,
        ge=BeamPruneConfig.answer_tokens + 1,
        description="generated tokens for the whole search (default n*max_tokens, at least one step)",
    )
    partial_target: Literal["probe", "consensus"] = "probe"


class GenerateRequest(RewardOverrides):
    # The schema states the rules the validator below enforces: exactly one input, and `beam` only
    # with strategy beam_prune (JSON null is refused for these fields, so absent is the only "none").
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "oneOf": [{"required": ["prompt"]}, {"required": ["messages"]}],
            "dependentSchemas": {
                "beam": {"properties": {"strategy": {"const": "beam_prune"}}, "required": ["strategy"]}
            },
        },
    )

    prompt: str | SkipJsonSchema[None] = Field(
        None, json_schema_extra={"pattern": r"\S"}, description="the question; the episode prompt is applied to it"
    )
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | SkipJsonSchema[None] = Field(
        None, description="a chat instead of a question"
    )
    n: int = Field(8, ge=1, le=64)
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    strategy: Literal["best_of_n", "weighted_vote", "majority", "loglik", "confidence", "first", "beam_prune"] = (
        "best_of_n"
    )
    beam: BeamOptions | SkipJsonSchema[None] = Field(None, description="beam_prune settings (n is the starting width)")
    return_candidates: bool = False

    @field_validator("prompt", "messages", "beam", mode="before")
    @classmethod
    def not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("leave the field out instead of sending null")
        return value

    @model_validator(mode="after")
    def one_input(self) -> GenerateRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("'prompt' is empty")
        if self.beam is not None and self.strategy != "beam_prune":
            raise ValueError("'beam' settings need strategy 'beam_prune'")
        if self.strategy == "beam_prune":
            self.beam_config()  # a setting the search rejects is a 422 here, not a failure mid-request
        return self

    def beam_config(self, n: int | None = None, max_tokens: int | None = None) -> BeamPruneConfig:
        """The search settings; `max_tokens` caps the whole search when no token budget is given.
        `n` and `max_tokens` override the request's (the values after clamping to the server's limits)."""
        options = self.beam or BeamOptions()
        n, max_tokens = n or self.n, max_tokens or self.max_tokens
        least = BeamPruneConfig.answer_tokens + 1  # one episode token and the answer probe
        budget = options.token_budget if options.token_budget is not None else max(n * max_tokens, least)
        return BeamPruneConfig(
            width=n,
            keep_ratio=options.keep_ratio,
            min_live=options.min_live,
            expand=options.expand,
            episode_tokens=min(options.episode_tokens, max(1, budget - BeamPruneConfig.answer_tokens)),
            max_episodes=options.max_episodes,
            token_budget=budget,
            partial_target=options.partial_target,
        )


class GenerateResponse(BaseModel):
    id: str
    object: Literal["l2t.generation"] = "l2t.generation"
    created: int
    model: str
    strategy: str
    chosen: CandidateOut
    candidates: list[CandidateOut] | None = Field(None, description="all N, best first (return_candidates)")
    usage: UsageOut
    timings: TimingsOut
