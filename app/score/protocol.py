"""POST /score: per-episode L2T rewards for given completions of one question."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas import CandidateOut, ChatMessage, RewardOverrides, TimingsOut, UsageOut


class ScoreRequest(RewardOverrides):
    model_config = ConfigDict(extra="forbid", strict=True)

    question: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    completions: list[str] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def one_input(self) -> ScoreRequest:
        if (self.question is None) == (self.messages is None):
            raise ValueError("give exactly one of 'question' or 'messages'")
        if self.question is not None and not self.question.strip():
            raise ValueError("'question' is empty")
        return self


class ScoreResponse(BaseModel):
    id: str
    object: Literal["l2t.score"] = "l2t.score"
    model: str
    candidates: list[CandidateOut] = Field(description="in input order")
    usage: UsageOut
    timings: TimingsOut
