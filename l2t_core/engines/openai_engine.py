"""A remote OpenAI-compatible server (`vllm serve`, a vLLM fleet behind a router, another l2t) as engine.

Generation scales out this way while scoring stays local: the prompt is rendered here with the
local tokenizer's chat template and sent to `/v1/completions`, so both sides see the same text. The
remote must serve the same model. Timeouts are explicit and retries are bounded (connection errors,
429 and 5xx only, with exponential back-off that honours Retry-After).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx

from l2t_core.engines.base import Cancelled, EngineError, Generation, GenerationBatch, SamplingParams

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model_name = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0))

    def generate(self, prompt: str, params: SamplingParams, cancel: threading.Event | None = None) -> GenerationBatch:
        body: dict[str, Any] = {
            "model": self.model_name,
            "prompt": prompt,
            "n": params.n,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
            body["include_stop_str_in_output"] = True  # vLLM extension: keep closing tags in the text
        payload = self._post("/completions", body, cancel)
        choices = sorted(payload.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != params.n:
            raise EngineError(f"remote returned {len(choices)} choices for n={params.n}")
        usage = payload.get("usage") or {}
        per_choice = int(usage.get("completion_tokens", 0)) // max(1, params.n)
        generations = [
            Generation(
                text=c.get("text", ""),
                n_tokens=int(c.get("completion_tokens", per_choice)),  # l2t servers report per-choice counts
                finish_reason=c.get("finish_reason") or "stop",
            )
            for c in choices
        ]
        return GenerationBatch(prompt_tokens=int(usage.get("prompt_tokens", 0)), generations=generations)

    def healthy(self) -> bool:
        try:
            return self.client.get(f"{self.base_url}/models", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self.client.close()

    def _post(self, path: str, body: dict[str, Any], cancel: threading.Event | None) -> dict[str, Any]:
        last_error = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled before the remote call")
            delay = self.backoff_s * (2**attempt)
            try:
                response = self.client.post(f"{self.base_url}{path}", json=body)
            except httpx.TimeoutException as exc:
                last_error = f"timed out: {exc}"
            except httpx.TransportError as exc:
                last_error = f"connection failed: {exc}"
            else:
                if response.status_code == 200:
                    return dict(response.json())
                last_error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRYABLE_STATUS:
                    raise EngineError(f"remote engine rejected the request: {last_error}")
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    delay = max(delay, float(retry_after))
            if attempt < self.max_retries:
                logger.warning(
                    "remote engine attempt %d failed (%s); retrying in %.1fs", attempt + 1, last_error, delay
                )
                if cancel is not None and cancel.wait(delay):
                    raise Cancelled("cancelled while waiting to retry")
                if cancel is None:
                    time.sleep(delay)
        raise EngineError(f"remote engine failed after {self.max_retries + 1} attempts: {last_error}")
