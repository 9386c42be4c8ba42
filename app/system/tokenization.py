"""Tokenize and detokenize with the generator's tokenizer, the one prompts are rendered and counted with.

A chat is rendered with the tokenizer's own chat template, as vLLM's /tokenize renders it (the prompt
format a chat request adds on top of it, its system prompt and worked examples, is not applied: this
counts the caller's turns as they are). Work is bounded by the server's limits: text by
L2T_MAX_PROMPT_CHARS, a token list by the same number (a prompt at that limit has no more tokens).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from transformers import AutoConfig

from app.core.config import Settings
from app.core.errors import APIError
from app.schemas import check_text_limit
from app.system.protocol import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from l2t_core.errors import InvalidRequest

# transformers' `model_max_length` when the tokenizer's config states none (VERY_LARGE_INTEGER, 1e30)
UNSTATED_LENGTH = 10**18


def check_served_model(settings: Settings, model: str | None) -> None:
    """A request that names a model must name the one served here (or "default"), as on /v1."""
    if model and model not in (settings.model_id, "default"):
        raise APIError(
            404,
            f"model {model!r} is not served here; GET /v1/models lists {settings.model_id!r}",
            "not_found_error",
            param="model",
            code="model_not_found",
        )


def tokenize(tokenizer: Any, body: TokenizeRequest, settings: Settings) -> TokenizeResponse:
    if body.prompt is not None:
        check_text_limit(body.prompt, settings.max_prompt_chars, "prompt")
        text, special = body.prompt, body.add_special_tokens is not False
    else:
        text, special = _render_chat(tokenizer, body), bool(body.add_special_tokens)
        check_text_limit(text, settings.max_prompt_chars, "messages")
    tokens = list(tokenizer(text, add_special_tokens=special)["input_ids"])
    strings = tokenizer.convert_ids_to_tokens(tokens) if body.return_token_strs else None
    return TokenizeResponse(
        count=len(tokens), max_model_len=max_model_len(tokenizer), tokens=tokens, token_strs=strings
    )


def detokenize(tokenizer: Any, body: DetokenizeRequest, settings: Settings) -> DetokenizeResponse:
    """The text of `tokens`, special tokens included (so that tokenize → detokenize gives back the
    rendered text); an id outside the vocabulary is refused, not decoded as nothing."""
    limit = settings.max_prompt_chars
    if len(body.tokens) > limit:
        message = f"tokens has {len(body.tokens)} ids; the limit is {limit} (L2T_MAX_PROMPT_CHARS)"
        raise APIError(400, message, param="tokens", code="too_long")
    vocabulary = len(tokenizer)
    outside = next((i for i, token in enumerate(body.tokens) if token >= vocabulary), None)
    if outside is not None:
        message = f"tokens.{outside} is {body.tokens[outside]}, outside the vocabulary (ids 0 to {vocabulary - 1})"
        raise InvalidRequest(message, param=f"tokens.{outside}")
    return DetokenizeResponse(prompt=tokenizer.decode(body.tokens))


def _render_chat(tokenizer: Any, body: TokenizeRequest) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidRequest("this model's tokenizer has no chat template: send a prompt instead", param="messages")
    messages = [message.to_message() for message in body.messages or []]
    generation_prompt = body.add_generation_prompt is not False
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt))


def max_model_len(tokenizer: Any) -> int | None:
    """The longest token sequence the model takes: its tokenizer's `model_max_length` where that is
    stated, else its config's `max_position_embeddings` (read once per model folder)."""
    stated = getattr(tokenizer, "model_max_length", None)
    if isinstance(stated, int) and 0 < stated < UNSTATED_LENGTH:
        return stated
    return _config_context(str(getattr(tokenizer, "name_or_path", "")))


@lru_cache(maxsize=4)
def _config_context(model_path: str) -> int | None:
    if not model_path:
        return None
    try:
        config = AutoConfig.from_pretrained(model_path, local_files_only=True)
    except (OSError, ValueError):
        return None
    length = getattr(config.get_text_config(), "max_position_embeddings", None)
    return length if isinstance(length, int) else None
