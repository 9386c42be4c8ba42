"""The chunks of a streamed `/v1/chat/completions` or `/v1/completions` response (`stream: true`).

The server's OpenAPI document describes a stream only as server-sent events whose `data` is JSON, so
these types cannot be generated; they are written here from the generated pieces they carry
(`L2TChoiceInfo`, the log-probs, `OpenAIUsage`), and a test decodes real streams with `strict=True`
so that a field the server adds to a chunk fails it. Order of a stream: the text (as sampled, or the
whole reranked choice at once), then one chunk per choice with its `finish_reason` (and `l2t` scores
when they were not on the text), then the usage when `stream_options.include_usage` asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from l2t_client.decoding import Model
from l2t_client.types import ChatLogprobs, CompletionLogprobs, L2TChoiceInfo, OpenAIUsage


@dataclass(frozen=True, kw_only=True)
class ChatDelta(Model):
    role: Literal["assistant"] | None = None
    content: str | None = None


@dataclass(frozen=True, kw_only=True)
class ChatChunkChoice(Model):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None
    l2t: L2TChoiceInfo | None = None


@dataclass(frozen=True, kw_only=True)
class ChatCompletionChunk(Model):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: OpenAIUsage | None = None


@dataclass(frozen=True, kw_only=True)
class CompletionChunkChoice(Model):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None
    l2t: L2TChoiceInfo | None = None


@dataclass(frozen=True, kw_only=True)
class CompletionChunk(Model):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChunkChoice]
    usage: OpenAIUsage | None = None
