"""POST /generate: sample N reasoning paths, score every episode, return the best (and optionally all)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas import (
    CandidateOut,
    ChatMessage,
    PromptFormatName,
    RewardOverrides,
    StrategyName,
    TimingsOut,
    UsageOut,
)
from l2t_core.search import BeamPruneConfig
from l2t_core.search.beam_prune import PARTIAL_TARGETS

_B = BeamPruneConfig  # defaults live there; a field left out keeps it


class BeamOptions(BaseModel):
    """beam_prune settings; omitted fields keep `BeamPruneConfig`'s defaults (n is the starting width)."""

    model_config = ConfigDict(extra="forbid")

    keep_ratio: float | None = Field(None, gt=0, le=1, description=f"live paths kept per round ({_B.keep_ratio})")
    min_live: int | None = Field(None, ge=1, description=f"never prune below this many live paths ({_B.min_live})")
    expand: bool | None = Field(None, description=f"refill pruned slots with copies of the best ({_B.expand})")
    episode_tokens: int | None = Field(None, ge=1, le=4096, description=f"one episode's cap ({_B.episode_tokens})")
    max_episodes: int | None = Field(None, ge=1, le=64, description=f"search rounds ({_B.max_episodes})")
    token_budget: int | None = Field(None, ge=1, description="generated tokens for the whole search (n × max_tokens)")
    partial_target: Literal[PARTIAL_TARGETS] | None = Field(  # type: ignore[valid-type]
        None, description=f"J's target for unfinished paths ({_B.partial_target})"
    )


class GenerateRequest(RewardOverrides):
    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(None, description="the question; the prompt format is applied to it")
    messages: list[ChatMessage] | None = Field(None, min_length=1, description="a chat instead of a question")
    prompt_format: PromptFormatName | None = Field(None, description="how the question is asked (server default)")
    n: int = Field(8, ge=1, le=64)
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int | None = None
    strategy: StrategyName | None = Field(None, description="how the answer is chosen (server default)")
    beam: BeamOptions | None = Field(None, description="beam_prune settings (n is the starting width)")
    return_candidates: bool = False

    @model_validator(mode="after")
    def one_input(self) -> GenerateRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("'prompt' is empty")
        if self.beam is not None and self.strategy not in (None, "beam_prune"):
            raise ValueError("'beam' settings need strategy 'beam_prune'")
        return self


class GenerateResponse(BaseModel):
    id: str
    object: Literal["l2t.generation"] = "l2t.generation"
    created: int
    model: str
    strategy: str
    prompt_format: str | None
    chosen: CandidateOut
    candidates: list[CandidateOut] | None = Field(None, description="all N, best first (return_candidates)")
    usage: UsageOut
    timings: TimingsOut
