"""POST /generate: sample N reasoning paths, score every episode, return the best (and optionally all)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas import CandidateOut, ChatMessage, RewardOverrides, TimingsOut, UsageOut


class GenerateRequest(RewardOverrides):
    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(None, description="the question; the episode prompt is applied to it")
    messages: list[ChatMessage] | None = Field(None, min_length=1, description="a chat instead of a question")
    n: int = Field(8, ge=1, le=64)
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int | None = None
    strategy: Literal["best_of_n", "weighted_vote", "majority", "loglik", "first"] = "best_of_n"
    return_candidates: bool = False

    @model_validator(mode="after")
    def one_input(self) -> GenerateRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("'prompt' is empty")
        return self


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
