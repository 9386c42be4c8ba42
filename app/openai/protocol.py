"""OpenAI-compatible request and response models (fields in OpenAI order) with an `l2t` extension.

`n` candidates are generated and reranked; `choices` come best first and each carries its L2T
scores under `l2t`. The fields we read are typed as strictly as OpenAI types them. No field is
silently ignored: presence and frequency penalties and `logit_bias` reach the engine, `best_of` on
completions samples that many candidates and returns the `n` best; an OpenAI field this server cannot
honour (tools, structured output, `echo`, `suffix`, …) is declared with the neutral value(s) it accepts, so the schema
says what works, and anything else is a 400 that names the field; a field OpenAI does not have is
a 400 too (a misspelt `max_token` must not quietly run with the default).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, WrapValidator, field_validator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from app.generate.protocol import AdaptiveOptions, BeamOptions
from app.schemas import (
    EpisodeOut,
    LogitBias,
    Penalty,
    PromptFormatName,
    RequestBody,
    RewardOverrides,
    StrategyName,
    logit_bias_pairs,
)
from app.serving import Serving
from l2t_core.engines.base import MAX_STOP_CHARS, MAX_STOP_STRINGS, SEED_MAX, SEED_MIN, check_stop_strings
from l2t_core.episodes.prompt import Message, RenderedPrompt
from l2t_core.request import GenerationRequest

DEFAULT_MAX_TOKENS = 256  # a request that names no max_tokens (OpenAI's is the context's rest)

StopString = Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]
StopList = Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)]
PromptText = Annotated[str, Field(min_length=1)]
TokenIdPrompt = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


def unsupported(reason: str) -> WrapValidator:
    """A field typed as the neutral value(s) this server accepts for it: anything else is refused with
    `reason` (what it cannot do, and what to send instead) rather than a type error."""

    def refuse(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f"not supported by this server: {reason}") from None

    return WrapValidator(refuse)


NoTools = Annotated[
    Annotated[list[Any], Field(max_length=0)] | None,
    unsupported("the model calls no tools; leave it out"),
]
NoToolChoice = Annotated[Literal["none"] | None, unsupported('the model calls no tools; only "none"')]


class TextResponseFormat(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["text"]


NoStructuredOutput = Annotated[
    TextResponseFormat | None,
    unsupported('decoding is not constrained to JSON or a schema; only {"type": "text"}'),
]


class StreamOptions(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True)

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
    # The schema states the rules between fields that the validators below and the pipeline enforce
    # (but for `best_of` against `n` and `stream`, which JSON Schema cannot say).
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "dependentSchemas": {
                "stream_options": {"properties": {"stream": {"const": True}}, "required": ["stream"]},
                "l2t_beam": {"properties": {"l2t_strategy": {"const": "beam_prune"}}, "required": ["l2t_strategy"]},
                "l2t_adaptive": {"properties": {"l2t_strategy": {"const": "adaptive"}}, "required": ["l2t_strategy"]},
            }
        },
    )

    model: str = ""
    frequency_penalty: Penalty | None = None
    logit_bias: LogitBias | None = Field(None, description='token id (a string: "50256") -> bias in [-100, 100]')
    n: int = Field(1, ge=1, le=64)
    max_tokens: int | None = Field(None, ge=1)
    presence_penalty: Penalty | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    stop: StopString | StopList | None = Field(
        None, description=f"at most {MAX_STOP_STRINGS} stop strings of at most {MAX_STOP_CHARS} characters each"
    )
    stream: bool = False
    stream_options: StreamOptions | None = Field(None, description="only with stream: true")
    user: str | None = Field(None, description="the end user's id, as OpenAI takes it (it changes nothing here)")
    l2t_strategy: StrategyName | None = Field(None, description="extension: how the answer is chosen (server default)")
    l2t_beam: BeamOptions | None = Field(None, description="extension: beam_prune settings, as `beam` on /generate")
    l2t_adaptive: AdaptiveOptions | None = Field(
        None, description="extension: adaptive settings, as `adaptive` on /generate"
    )

    @field_validator("stop", mode="before")
    @classmethod
    def bounded_stops(cls, value: Any) -> Any:
        """The engines' own limits, checked here so that the message says what they are (and not which
        branch of `str | list` failed)."""
        if isinstance(value, str):
            check_stop_strings((value,))
        elif isinstance(value, list) and all(isinstance(text, str) for text in value):
            check_stop_strings(value)
        return value

    @field_validator("stream_options")
    @classmethod
    def only_when_streaming(cls, value: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
        if value is not None and info.data.get("stream") is False:
            raise ValueError("only allowed when stream is true")
        return value

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    @property
    def candidates(self) -> int:
        """Candidates sampled and reranked for each prompt (`n`; `best_of` on completions)."""
        return self.n

    def to_core(self, serving: Serving, prompt: RenderedPrompt, streaming: bool = False) -> GenerationRequest:
        """The core request for one prompt: the model checked, sampling within the server's limits (a
        max_tokens left out is the route's default, clamped to the limit), the server's strategy where the
        body names none — `first` when tokens are streamed as sampled, since their order is then fixed."""
        serving.check_model(self.model)
        max_tokens = self.requested_max_tokens
        sampling = serving.sampling(
            self.candidates,
            max_tokens or DEFAULT_MAX_TOKENS,
            self.temperature,
            self.top_p,
            self.seed,
            self.stop_strings(),
            defaulted=() if max_tokens else ("max_tokens",),
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            logit_bias=logit_bias_pairs(self.logit_bias),
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
    function_call: NoToolChoice = None
    functions: NoTools = None
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: NoStructuredOutput = None
    tool_choice: NoToolChoice = None
    tools: NoTools = None
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
    prompt: (
        PromptText
        | Annotated[list[PromptText], Field(min_length=1)]
        | TokenIdPrompt
        | Annotated[list[TokenIdPrompt], Field(min_length=1)]
    ) = Field(
        description="raw prompt text (or a list of them), continued as it is (no chat template); or token ids "
        "(a list of ids, or a list of such lists), continued as they are (nothing added)"
    )
    return_token_ids: bool = Field(
        False, description="vLLM's extension: each choice also carries its sampled token_ids and prompt_token_ids"
    )
    best_of: int | None = Field(
        None,
        ge=1,
        le=64,
        description="candidates sampled and reranked per prompt, of which the n best are returned (default n; "
        "at least n; not with stream unless equal to n)",
    )
    echo: Annotated[Literal[False] | None, unsupported("the prompt is not echoed; only false")] = None
    logprobs: int | None = Field(None, ge=0, le=0, description="0: log-probs of the returned tokens; no alternatives")
    suffix: Annotated[
        Annotated[str, Field(max_length=0)] | None, unsupported("text is not inserted before a suffix; leave it out")
    ] = None
    include_stop_str_in_output: bool = False

    @field_validator("best_of")
    @classmethod
    def best_of_at_least_n(cls, value: int | None, info: ValidationInfo) -> int | None:
        """OpenAI's rules: best_of >= n, and no streaming of a choice picked from more candidates than are
        returned (the pick needs every candidate finished and scored)."""
        n = info.data.get("n")
        if value is None or n is None:
            return value
        if value < n:
            raise ValueError(f"best_of={value} must be at least n={n}: it is how many candidates the n are chosen from")
        if value > n and info.data.get("stream"):
            raise ValueError(f"best_of={value} > n={n} cannot be streamed; send stream: false or best_of equal to n")
        return value

    @property
    def candidates(self) -> int:
        return self.best_of or self.n

    @field_validator("logprobs", mode="before")
    @classmethod
    def no_alternatives(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            raise ValueError("top alternatives are not supported; logprobs=0 returns the chosen tokens' log-probs")
        return value

    @property
    def prompts(self) -> list[str] | list[list[int]]:
        """The prompts as texts, or as token-id lists (one kind per request, as the schema allows)."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if all(isinstance(token, int) for token in self.prompt):
            return [[int(token) for token in self.prompt]]  # type: ignore[arg-type]
        return cast("list[str] | list[list[int]]", list(self.prompt))

    @property
    def wants_logprobs(self) -> bool:
        return self.logprobs is not None


class L2TChoiceInfo(BaseModel):
    score: float | None = Field(description="the aggregated episode rewards; null when the engine scored and β ≠ 0")
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
    token_ids: list[int] | None = Field(None, description="with return_token_ids: the sampled ids, EOS included")
    prompt_token_ids: list[int] | None = Field(None, description="with return_token_ids: the prompt's ids")


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
