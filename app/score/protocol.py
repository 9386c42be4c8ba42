"""POST /score: per-episode L2T rewards for given completions of one question."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.schemas import (
    CandidateOut,
    ChatMessage,
    PromptFormatName,
    RewardOverrides,
    TimingsOut,
    UsageOut,
    exactly_one,
    refuse_null,
)


class ScoreRequest(RewardOverrides):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"oneOf": [{"required": ["question"]}, {"required": ["messages"]}]},
    )

    question: str | SkipJsonSchema[None] = Field(None, json_schema_extra={"pattern": r"\S"})
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | SkipJsonSchema[None] = None
    completions: list[str] = Field(
        min_length=1,
        max_length=64,
        description="whole assistant replies (with the format's prefill, as /generate returns them)",
    )
    prompt_format: PromptFormatName | SkipJsonSchema[None] = Field(
        None, description="how the question was asked (the server's default when omitted)"
    )
    progress: bool = Field(
        False,
        description="score the completions as one pool and fill in every episode's progress toward the answers "
        "the other completions support (multi-target J; costs probes)",
    )

    @field_validator("question", "messages", mode="before")
    @classmethod
    def not_null(cls, value: Any) -> Any:
        return refuse_null(value)

    @model_validator(mode="after")
    def one_input(self) -> ScoreRequest:
        exactly_one("question", self.question, "messages", self.messages)
        if self.question is not None and not self.question.strip():
            raise ValueError("'question' is empty")
        return self


class ScoreResponse(BaseModel):
    id: str
    object: Literal["l2t.score"] = "l2t.score"
    model: str
    scorer_model: str = Field(description="the model that measured J, rewards and log-probs")
    compression_penalty_absent: str | None = Field(
        None, description="why every compression_penalty is null (the server scores on its engine); null otherwise"
    )
    prompt_format: str | None
    candidates: list[CandidateOut] = Field(description="in input order")
    usage: UsageOut
    timings: TimingsOut
