"""The l2t server's routes as typed calls, sync (`L2TClient`) and async (`AsyncL2TClient`).

Each call is one HTTP request with the client's timeout, retried by `RetryPolicy` (retry.py: 408, 429,
502, 503, 504 and lost connections, honouring Retry-After), and its JSON read into the generated
response types (types.py) or, for `stream_*`, into an iterator of typed chunks (streaming.py).
Options are passed through as the body's fields (None means "leave it out": the server's default), so
every field the server accepts is reachable without a client release.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx

from l2t_client.chunks import ChatCompletionChunk, CompletionChunk
from l2t_client.decoding import Model
from l2t_client.errors import L2TConnectionError, L2TError, error_from
from l2t_client.retry import RetryPolicy
from l2t_client.streaming import AsyncChunkStream, ChunkStream
from l2t_client.types import ChatCompletionResponse, CompletionResponse, GenerateResponse, ScoreResponse

M = TypeVar("M", bound=Model)
Messages = list[dict[str, Any]]
DEFAULT_URL = "http://127.0.0.1:8000"

__all__ = ["AsyncL2TClient", "L2TClient", "L2TConnectionError", "L2TError"]


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _body(options: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    return {k: v for k, v in {**fields, **options}.items() if v is not None}


def _generate_body(prompt: str | None, messages: Messages | None, options: Mapping[str, Any]) -> dict[str, Any]:
    return _body(options, messages=messages) if messages is not None else _body(options, prompt=prompt)


def _unreachable(request: httpx.Request, error: Exception, attempts: int) -> L2TConnectionError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return L2TConnectionError(f"{request.method} {request.url}: no answer{tries} ({type(error).__name__}: {error})")


class _Config:
    """What both clients hold: the retry policy and whether responses are decoded strictly."""

    def __init__(
        self,
        max_retries: int,
        backoff_s: float,
        max_backoff_s: float,
        max_retry_after_s: float,
        strict: bool,
    ) -> None:
        self.retry = RetryPolicy(max_retries, backoff_s, max_backoff_s, max_retry_after_s)
        self.strict = strict

    def _read(self, kind: type[M], response: httpx.Response) -> M:
        return kind.from_json(response.json(), self.strict)


class L2TClient(_Config):
    """Sync client. `strict=True` makes a response field this client does not know an error (for tests,
    or to notice a client older than its server); by default such fields are ignored."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 60.0,
        strict: bool = False,
    ) -> None:
        super().__init__(max_retries, backoff_s, max_backoff_s, max_retry_after_s, strict)
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout_s)

    def __enter__(self) -> L2TClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, path: str, body: dict[str, Any], stream: bool = False) -> httpx.Response:
        """POST with retries; the response of the first success, or the error of the last failure."""
        attempt = 0
        while True:
            request = self._http.build_request("POST", path, json=body)
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = self.retry.after_error(attempt, exc)
                if delay is None:
                    raise _unreachable(request, exc, attempt + 1) from exc
            else:
                if response.status_code < 400:
                    return response
                delay = self.retry.after_response(attempt, response)
                if delay is None:
                    response.read()
                    response.close()
                    raise error_from(response)
                response.close()
            time.sleep(delay)
            attempt += 1

    def health(self) -> bool:
        """Whether the server is up and ready (False while it loads, or when it cannot be reached)."""
        try:
            return self._http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def generate(
        self, prompt: str | None = None, *, messages: Messages | None = None, **options: Any
    ) -> GenerateResponse:
        """POST /generate; options: n, max_tokens, temperature, top_p, seed, strategy, prompt_format, target,
        reference, beam, adaptive, progress, return_candidates, …"""
        return self._read(GenerateResponse, self._send("/generate", _generate_body(prompt, messages, options)))

    def score(self, question: str | None, completions: list[str], **options: Any) -> ScoreResponse:
        """POST /score; `question` None with `messages=` scores replies to a chat; options: reference, target,
        prompt_format, progress, alpha, beta, …"""
        body = _body(options, question=question, completions=completions)
        return self._read(ScoreResponse, self._send("/score", body))

    def chat_completion(self, messages: Messages, model: str = "", **options: Any) -> ChatCompletionResponse:
        """POST /v1/chat/completions; options as OpenAI's (n, max_tokens, temperature, stop, logprobs, …) and
        the `l2t_*` extensions (l2t_strategy, l2t_prompt_format, l2t_beam, l2t_adaptive)."""
        body = _body(options, model=model, messages=messages)
        return self._read(ChatCompletionResponse, self._send("/v1/chat/completions", body))

    def completion(self, prompt: str | list[str], model: str = "", **options: Any) -> CompletionResponse:
        """POST /v1/completions: raw prompt text continued as it is (no chat template)."""
        body = _body(options, model=model, prompt=prompt)
        return self._read(CompletionResponse, self._send("/v1/completions", body))

    def stream_chat_completion(
        self, messages: Messages, model: str = "", **options: Any
    ) -> ChunkStream[ChatCompletionChunk]:
        """/v1/chat/completions with `stream: true`: the request is sent (and retried) now; iterate the
        result for its chunks. Pass `stream_options={"include_usage": True}` for a last usage chunk."""
        body = _body(options, model=model, messages=messages) | {"stream": True}
        response = self._send("/v1/chat/completions", body, stream=True)
        return ChunkStream(response, ChatCompletionChunk, self.strict)

    def stream_completion(
        self, prompt: str | list[str], model: str = "", **options: Any
    ) -> ChunkStream[CompletionChunk]:
        """/v1/completions with `stream: true` (as `stream_chat_completion`)."""
        body = _body(options, model=model, prompt=prompt) | {"stream": True}
        return ChunkStream(self._send("/v1/completions", body, stream=True), CompletionChunk, self.strict)


class AsyncL2TClient(_Config):
    """Async client: the same calls as `L2TClient`, awaited; `stream_*` return an `AsyncChunkStream`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 60.0,
        strict: bool = False,
    ) -> None:
        super().__init__(max_retries, backoff_s, max_backoff_s, max_retry_after_s, strict)
        self._http = httpx.AsyncClient(base_url=base_url, headers=_headers(api_key), timeout=timeout_s)

    async def __aenter__(self) -> AsyncL2TClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, path: str, body: dict[str, Any], stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            request = self._http.build_request("POST", path, json=body)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = self.retry.after_error(attempt, exc)
                if delay is None:
                    raise _unreachable(request, exc, attempt + 1) from exc
            else:
                if response.status_code < 400:
                    return response
                delay = self.retry.after_response(attempt, response)
                if delay is None:
                    await response.aread()
                    await response.aclose()
                    raise error_from(response)
                await response.aclose()
            await asyncio.sleep(delay)
            attempt += 1

    async def health(self) -> bool:
        try:
            return (await self._http.get("/health")).status_code == 200
        except httpx.TransportError:
            return False

    async def generate(
        self, prompt: str | None = None, *, messages: Messages | None = None, **options: Any
    ) -> GenerateResponse:
        response = await self._send("/generate", _generate_body(prompt, messages, options))
        return self._read(GenerateResponse, response)

    async def score(self, question: str | None, completions: list[str], **options: Any) -> ScoreResponse:
        body = _body(options, question=question, completions=completions)
        return self._read(ScoreResponse, await self._send("/score", body))

    async def chat_completion(self, messages: Messages, model: str = "", **options: Any) -> ChatCompletionResponse:
        body = _body(options, model=model, messages=messages)
        return self._read(ChatCompletionResponse, await self._send("/v1/chat/completions", body))

    async def completion(self, prompt: str | list[str], model: str = "", **options: Any) -> CompletionResponse:
        body = _body(options, model=model, prompt=prompt)
        return self._read(CompletionResponse, await self._send("/v1/completions", body))

    async def stream_chat_completion(
        self, messages: Messages, model: str = "", **options: Any
    ) -> AsyncChunkStream[ChatCompletionChunk]:
        body = _body(options, model=model, messages=messages) | {"stream": True}
        response = await self._send("/v1/chat/completions", body, stream=True)
        return AsyncChunkStream(response, ChatCompletionChunk, self.strict)

    async def stream_completion(
        self, prompt: str | list[str], model: str = "", **options: Any
    ) -> AsyncChunkStream[CompletionChunk]:
        body = _body(options, model=model, prompt=prompt) | {"stream": True}
        return AsyncChunkStream(await self._send("/v1/completions", body, stream=True), CompletionChunk, self.strict)
