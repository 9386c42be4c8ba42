"""Tokenize and detokenize with the generator's tokenizer, the one prompts are rendered and counted with.

A chat is rendered with the tokenizer's own chat template, as vLLM's /tokenize renders it (the prompt
format a chat request adds on top of it, its system prompt and worked examples, is not applied: this
counts the caller's turns as they are). Work is bounded by the server's limits: text by
L2T_MAX_PROMPT_CHARS, a token list by the same number (a prompt at that limit has no more tokens).
"""

from __future__ import annotations

from typing import Any

from app.core.errors import APIError
from app.serving import Serving
from app.system.protocol import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from l2t_core.errors import InvalidRequest


def tokenize(serving: Serving, body: TokenizeRequest) -> TokenizeResponse:
    serving.check_model(body.model or "")
    pipeline = serving.pipeline
    tokenizer = pipeline.tokenizer
    if body.prompt is not None:
        serving.check_text(body.prompt, "prompt")
        text, special = body.prompt, body.add_special_tokens is not False
    else:
        text, special = _render_chat(tokenizer, body), bool(body.add_special_tokens)
        serving.check_text(text, "messages")
    tokens = list(tokenizer(text, add_special_tokens=special)["input_ids"])
    strings = tokenizer.convert_ids_to_tokens(tokens) if body.return_token_strs else None
    return TokenizeResponse(count=len(tokens), max_model_len=pipeline.context_length, tokens=tokens, token_strs=strings)


def detokenize(serving: Serving, body: DetokenizeRequest) -> DetokenizeResponse:
    """The text of `tokens`, special tokens included (so that tokenize → detokenize gives back the
    rendered text); an id outside the vocabulary is refused, not decoded as nothing."""
    serving.check_model(body.model or "")
    tokenizer = serving.pipeline.tokenizer
    limit = serving.settings.max_prompt_chars
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
