"""OpenAI-compatible request and response models (fields in OpenAI order) with an `l2t` extension.

`n` candidates are generated and reranked; `choices` come best first and each carries its L2T
scores under `l2t`. Unknown OpenAI fields are accepted and ignored, as vLLM does; the fields we
read are typed as strictly as OpenAI types them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.generate.protocol import AdaptiveOptions, BeamOptions
from app.schemas import EpisodeOut, PromptFormatName, RequestBody, RewardOverrides, StrategyName
from app.serving import Serving
from l2t_core.engines.base import SEED_MAX, SEED_MIN
from l2t_core.episodes.prompt import Message, RenderedPrompt
from l2t_core.request import GenerationRequest

DEFAULT_MAX_TOKENS = 256  # a request that names no max_tokens (OpenAI's is the context's rest)

StopString = Annotated[str, Field(min_length=1)]
PromptText = Annotated[str, Field(min_length=1)]


class StreamOptions(RequestBody):
    include_usage: bool = False


class TextPart(RequestBody):
    type: Literal["text"]
    text: str


class OpenAIChatMessage(RequestBody):
    """A chat message as OpenAI sends it: `content` a string or a list of text parts; the `developer`
    role (OpenAI's newer name for instructions) is rendered as the system message."""

    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] = Field(description="text, or a list of text parts (joined in order)")

    def to_message(self) -> Message:
        text = self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class _OpenAIRequest(RewardOverrides):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = ""
    n: int = Field(1, ge=1, le=64)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    stop: StopString | list[StopString] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    l2t_strategy: StrategyName | None = Field(None, description="extension: how the answer is chosen (server default)")
    l2t_beam: BeamOptions | None = Field(None, description="extension: beam_prune settings, as `beam` on /generate")
    l2t_adaptive: AdaptiveOptions | None = Field(
        None, description="extension: adaptive settings, as `adaptive` on /generate"
    )

    @field_validator("stop", mode="before")
    @classmethod
    def no_empty_stop(cls, value: Any) -> Any:
        if value == "" or (isinstance(value, list) and "" in value):
            raise ValueError("a stop string is empty; every stop string needs at least one character")
        return value

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def to_core(self, serving: Serving, prompt: RenderedPrompt, streaming: bool = False) -> GenerationRequest:
        """The core request for one prompt: the model checked, sampling within the server's limits (a
        max_tokens left out is the route's default, clamped to the limit), the server's strategy where the
        body names none — `first` when tokens are streamed as sampled, since their order is then fixed."""
        serving.check_model(self.model)
        max_tokens = self.requested_max_tokens
        sampling = serving.sampling(
            self.n,
            max_tokens or DEFAULT_MAX_TOKENS,
            self.temperature,
            self.top_p,
            self.seed,
            self.stop_strings(),
            defaulted=() if max_tokens else ("max_tokens",),
        )
        return GenerationRequest.build(
            prompt,
            sampling,
            self.l2t_strategy or ("first" if streaming else serving.settings.strategy),
            self.reward_config(serving.pipeline.reward_config),
            self.reference,
            beam=self.l2t_beam.model_dump(exclude_none=True) if self.l2t_beam else None,
            adaptive=self.l2t_adaptive.model_dump(exclude_none=True) if self.l2t_adaptive else None,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_OpenAIRequest):
    messages: list[OpenAIChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    l2t_prompt_format: PromptFormatName | None = Field(
        None, description="extension: the prompt format applied to the chat (server default)"
    )
    logprobs: bool = Field(False, description="log-probs of the returned tokens (under the scoring model)")
    top_logprobs: int | None = Field(None, ge=0, le=0, description="only 0: the engine gives no alternatives")

    @field_validator("top_logprobs", mode="before")
    @classmethod
    def no_alternatives(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            raise ValueError("top alternatives are not supported; logprobs=true returns the chosen tokens' log-probs")
        return value

    @property
    def wants_logprobs(self) -> bool:
        return self.logprobs

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_OpenAIRequest):
    prompt: PromptText | Annotated[list[PromptText], Field(min_length=1)] = Field(
        description="raw prompt text (or a list of them), continued as it is (no chat template)"
    )
    logprobs: int | None = Field(None, ge=0, le=0, description="0: log-probs of the returned tokens; no alternatives")
    include_stop_str_in_output: bool = False

    @field_validator("logprobs", mode="before")
    @classmethod
    def no_alternatives(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            raise ValueError("top alternatives are not supported; logprobs=0 returns the chosen tokens' log-probs")
        return value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @property
    def wants_logprobs(self) -> bool:
        return self.logprobs is not None


class L2TChoiceInfo(BaseModel):
    score: float
    answer: str | None
    target: str | None
    tagged: bool = Field(description="the model wrote <episode_k> tags (else the fallback split was used)")
    candidate_index: int = Field(description="position in generation order")
    completion_tokens: int
    mean_logprob: float
    episodes: list[EpisodeOut]


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[dict[str, Any]] = Field(default_factory=list)


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob]
    refusal: None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: None = None
    text_offset: list[int]


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    logprobs: ChatLogprobs | None = None
    finish_reason: str
    l2t: L2TChoiceInfo


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
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
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n"
