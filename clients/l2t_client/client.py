"""HTTP calls with timeouts and bounded retries: 503 (busy or loading) is retried after its Retry-After."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from l2t_client.types import GenerateResult, ScoreResult


class L2TError(RuntimeError):
    """The server answered with an error envelope (or could not be reached)."""

    def __init__(self, status: int, message: str, type_: str | None = None, code: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.type = type_
        self.code = code


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        raise L2TError(response.status_code, error["message"], error.get("type"), error.get("code"))
    except (ValueError, KeyError, TypeError):
        raise L2TError(response.status_code, response.text[:300]) from None


def _retry_delay(response: httpx.Response, attempt: int, backoff_s: float) -> float:
    header = response.headers.get("retry-after", "")
    return float(header) if header.replace(".", "", 1).isdigit() else backoff_s * 2**attempt


def _generate_body(prompt: str | None, messages: list[dict[str, str]] | None, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if messages is not None:
        body["messages"] = messages
    else:
        body["prompt"] = prompt
    return body


def _score_body(question: str, completions: list[str], **options: Any) -> dict[str, Any]:
    return {"question": question, "completions": completions, **{k: v for k, v in options.items() if v is not None}}


class L2TClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        timeout_s: float = 600.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout_s)

    def __enter__(self) -> L2TClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(self.max_retries + 1):
            response = self._http.post(path, json=body)
            if response.status_code == 503 and attempt < self.max_retries:
                time.sleep(_retry_delay(response, attempt, self.backoff_s))
                continue
            _raise_for(response)
            return dict(response.json())
        raise AssertionError("unreachable")

    def health(self) -> bool:
        return self._http.get("/health").status_code == 200

    def generate(
        self, prompt: str | None = None, *, messages: list[dict[str, str]] | None = None, **options: Any
    ) -> GenerateResult:
        """POST /generate; options: n, max_tokens, temperature, top_p, seed, strategy, prompt_format, target,
        reference, …"""
        return GenerateResult.from_json(self._post("/generate", _generate_body(prompt, messages, **options)))

    def score(self, question: str, completions: list[str], **options: Any) -> ScoreResult:
        body = _score_body(question, completions, **options)
        return ScoreResult.from_json(self._post("/score", body))


class AsyncL2TClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        timeout_s: float = 600.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._http = httpx.AsyncClient(base_url=base_url, headers=_headers(api_key), timeout=timeout_s)

    async def __aenter__(self) -> AsyncL2TClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(self.max_retries + 1):
            response = await self._http.post(path, json=body)
            if response.status_code == 503 and attempt < self.max_retries:
                await asyncio.sleep(_retry_delay(response, attempt, self.backoff_s))
                continue
            _raise_for(response)
            return dict(response.json())
        raise AssertionError("unreachable")

    async def health(self) -> bool:
        return (await self._http.get("/health")).status_code == 200

    async def generate(
        self, prompt: str | None = None, *, messages: list[dict[str, str]] | None = None, **options: Any
    ) -> GenerateResult:
        return GenerateResult.from_json(await self._post("/generate", _generate_body(prompt, messages, **options)))

    async def score(self, question: str, completions: list[str], **options: Any) -> ScoreResult:
        body = _score_body(question, completions, **options)
        return ScoreResult.from_json(await self._post("/score", body))
