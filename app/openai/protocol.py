"""OpenAI-compatible request and response models (fields in OpenAI order) with an `l2t` extension.

`n` candidates are generated and reranked; `choices` come best first and each carries its L2T
scores under `l2t`. Unknown OpenAI fields are accepted and ignored, as vLLM does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas import ChatMessage, EpisodeOut, PromptFormatName, RewardOverrides, StrategyName


class StreamOptions(BaseModel):
    include_usage: bool = False


class _OpenAIRequest(RewardOverrides):
    model_config = ConfigDict(extra="allow")

    model: str = ""
    n: int = Field(1, ge=1, le=64)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    l2t_strategy: StrategyName | None = Field(None, description="extension: how the answer is chosen (server default)")

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(_OpenAIRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    l2t_prompt_format: PromptFormatName | None = Field(
        None, description="extension: the prompt format applied to the chat (server default)"
    )


class CompletionRequest(_OpenAIRequest):
    prompt: str = Field(min_length=1, description="raw prompt text, continued as it is (no chat template)")
    include_stop_str_in_output: bool = False


class L2TChoiceInfo(BaseModel):
    score: float
    answer: str | None
    target: str | None
    tagged: bool = Field(description="the model wrote <episode_k> tags (else the fallback split was used)")
    candidate_index: int = Field(description="position in generation order")
    completion_tokens: int
    mean_logprob: float
    episodes: list[EpisodeOut]


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    logprobs: None = None
    finish_reason: str
    l2t: L2TChoiceInfo


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: str
    l2t: L2TChoiceInfo


class OpenAIUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    scoring_tokens: int


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: OpenAIUsage


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: OpenAIUsage


def sse(payload: dict[str, Any] | str) -> str:
    import json

    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n"
