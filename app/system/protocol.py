"""Request and response models of /tokenize, /detokenize and /version, in vLLM's shapes.

vLLM's server takes two tokenize bodies (`TokenizeCompletionRequest`: a `prompt`;
`TokenizeChatRequest`: chat `messages` rendered with the chat template); here they are one model
that takes exactly one of the two, so an error names the field at fault rather than a union branch,
and the schema says so (`oneOf`), so that a client or fuzzer built from it sends only what is served.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.openai.protocol import OpenAIChatMessage
from app.schemas import RequestBody, exactly_one, refuse_null

CHAT_ONLY = ("add_generation_prompt",)
# exactly one of `prompt` or `messages`, and the chat-only options with messages only (JSON null is
# refused for these fields, so absent is the only "none")
ONE_INPUT: dict[str, Any] = {
    "oneOf": [
        {"required": ["prompt"], "not": {"anyOf": [{"required": [name]} for name in ("messages", *CHAT_ONLY)]}},
        {"required": ["messages"], "not": {"required": ["prompt"]}},
    ]
}


class TokenizeRequest(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=ONE_INPUT)

    model: str | None = None
    prompt: str | SkipJsonSchema[None] = Field(None, description="text to tokenize as it is (no chat template)")
    messages: Annotated[list[OpenAIChatMessage], Field(min_length=1)] | SkipJsonSchema[None] = Field(
        None, description="a chat, rendered with the model's chat template and then tokenized"
    )
    add_special_tokens: bool | SkipJsonSchema[None] = Field(
        None,
        description="add the tokenizer's special tokens (e.g. BOS); default true for a prompt, false for "
        "messages (the chat template writes them)",
    )
    add_generation_prompt: bool | SkipJsonSchema[None] = Field(
        None, description="messages only: end with the assistant turn's opening, as a chat request does (default true)"
    )
    return_token_strs: bool = Field(False, description="also return each token's string")

    @field_validator("prompt", "messages", "add_special_tokens", "add_generation_prompt", mode="before")
    @classmethod
    def not_null(cls, value: Any) -> Any:
        return refuse_null(value)

    @model_validator(mode="after")
    def one_input(self) -> TokenizeRequest:
        exactly_one("prompt", self.prompt, "messages", self.messages)
        if self.prompt is not None and self.add_generation_prompt is not None:
            raise ValueError("'add_generation_prompt' applies to messages only")
        return self


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int | None = Field(
        description="the longest token sequence the model takes (null when neither its tokenizer nor its config says)"
    )
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0)]] = Field(description="token ids of the model's vocabulary")


class DetokenizeResponse(BaseModel):
    prompt: str


class VersionResponse(BaseModel):
    version: str
