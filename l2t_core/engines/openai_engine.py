"""A remote OpenAI-compatible server (`vllm serve`, a vLLM fleet behind a router, another l2t) as engine.

Generation scales out this way while scoring stays local: the prompt is rendered and tokenized here,
with the local tokenizer, and sent to `/v1/completions` as a token-id prompt (the OpenAI API and vLLM
take a list of ids), so the remote continues exactly the ids the scorer scores; `return_token_ids`
(vLLM's extension, which l2t servers honour too) brings back the sampled ids, EOS included. A remote
that does not return them leaves `Generation.token_ids` empty and the scorer tokenizes its text. The
remote must serve the same model; its context (`max_model_len` on its `/models` card, as vLLM states it)
is read once at start and is this engine's `max_model_len`, which admission goes by.

A slow or failing remote must not stall the server that uses it:
- Health is a state a background thread refreshes (`GET /models` every few seconds, with a short
  timeout); `healthy()`, which `/health` and every admission ask on the event loop, only reads it.
- One `generate` call has one deadline, `timeout_s` from its start; every attempt gets what is left.
- Only what cannot have reached the remote's model is retried: connection failures and 429/502/503,
  with capped exponential back-off that honours `Retry-After` up to the same cap, and never a wait
  that ends past the deadline. A read timeout, a broken connection, a 500 or a 504 may mean the
  remote is still generating; sending the request again would only double its load.
- Cancellation and the deadline reach a call in flight: a watcher shuts the attempt's socket down,
  which wakes the blocked read at once and tells the remote that its client went away.
- The server's request id goes to the remote as `X-Request-Id` and into every attempt's log line.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from l2t_core.engines.base import (
    Cancelled,
    EngineError,
    Generation,
    GenerationBatch,
    SamplingParams,
    Tail,
    TailLogprob,
    distinct_tails,
    in_request_order,
)
from l2t_core.request_context import current_request_id

logger = logging.getLogger(__name__)

# 429 and 503: the remote refused before starting; 502: the router could not reach a backend.
RETRYABLE_STATUS = frozenset({429, 502, 503})
MAX_WAIT_S = 5.0  # the longest pause between two attempts, from back-off or from Retry-After
CONNECT_TIMEOUT_S = 5.0  # a connect cannot be interrupted; cancellation is seen once it ends
HEALTH_INTERVAL_S = 5.0
HEALTH_TIMEOUT_S = 2.0
WATCH_INTERVAL_S = 0.05  # how often a call in flight looks at its cancel event
TAIL_PROMPTS_PER_CALL = 64  # teacher-forced sequences in one /v1/completions call


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
        max_wait_s: float = MAX_WAIT_S,
        health_interval_s: float = HEALTH_INTERVAL_S,
        health_timeout_s: float = HEALTH_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model_name = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.health_timeout_s = health_timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # No keep-alive: each attempt opens its own connection, whose socket the call's watcher can
        # shut down on cancel (a pooled connection's socket is not visible to the request using it).
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        self.client = httpx.Client(headers=headers, limits=limits)
        self.max_model_len = self._served_context_length()
        self._health = HealthProbe(self._probe, health_interval_s)

    def generate(
        self, prompt: Sequence[int], params: SamplingParams, cancel: threading.Event | None = None
    ) -> GenerationBatch:
        body: dict[str, Any] = {
            "model": self.model_name,
            "prompt": [int(i) for i in prompt],  # token ids: the remote tokenizes nothing, adds no BOS
            "return_token_ids": True,
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
        if params.presence_penalty:
            body["presence_penalty"] = params.presence_penalty
        if params.frequency_penalty:
            body["frequency_penalty"] = params.frequency_penalty
        if params.logit_bias:
            body["logit_bias"] = {str(token): bias for token, bias in params.logit_bias}  # OpenAI's keys are strings
        payload = self._post("/completions", body, cancel)
        choices = sorted(payload.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != params.n:
            raise EngineError(f"remote returned {len(choices)} choices for n={params.n}")
        usage = payload.get("usage") or {}
        per_choice = int(usage.get("completion_tokens", 0)) // max(1, params.n)
        generations = [_generation(c, per_choice) for c in choices]
        return GenerationBatch(prompt_tokens=int(usage.get("prompt_tokens", 0)), generations=generations)

    def tail_logprobs(self, sequences: Sequence[tuple[list[int], int]]) -> list[TailLogprob]:
        """For each (token ids, n): log p of each of the last n ids, teacher-forced by the remote through
        vLLM's `prompt_logprobs` extension of `/v1/completions` (token-id prompts, one token generated
        and ignored), `TAIL_PROMPTS_PER_CALL` sequences per call. vLLM's server does not read its prefix
        cache for such requests, so every token counts as computed. A remote without the extension (a
        plain OpenAI server, another l2t) is an `EngineError` saying so."""
        unique = distinct_tails(sequences)
        results: dict[Tail, TailLogprob] = {}
        for start in range(0, len(unique), TAIL_PROMPTS_PER_CALL):
            chunk = unique[start : start + TAIL_PROMPTS_PER_CALL]
            body = {
                "model": self.model_name,
                "prompt": [list(ids) for ids, _ in chunk],
                "max_tokens": 1,
                "temperature": 0.0,
                "prompt_logprobs": 0,  # vLLM: the actual token's log-probability at every prompt position
            }
            payload = self._post("/completions", body, None)
            choices = sorted(payload.get("choices", []), key=lambda c: c.get("index", 0))
            if len(choices) != len(chunk):
                raise EngineError(f"remote returned {len(choices)} choices for {len(chunk)} prompts")
            for (ids, n), choice in zip(chunk, choices, strict=True):
                results[(ids, n)] = TailLogprob(_prompt_tail(choice, ids, n), len(ids), len(ids))
        return in_request_order(sequences, results)

    def healthy(self) -> bool:
        """The remote's state at the last probe; never waits for the remote."""
        return self._health.healthy

    def close(self) -> None:
        self._health.close(self.health_timeout_s)
        self.client.close()

    def _served_context_length(self) -> int | None:
        """The served model's context from its `/models` card (`max_model_len`, as vLLM's OpenAI server
        states it), read once as the engine is built (off the event loop, like the first health probe).

        None where the card states none, or the remote does not answer within the health timeout: then
        admission goes by the scorer model's context alone, and a request longer than the remote's is
        refused by the remote."""
        try:
            response = self.client.get(f"{self.base_url}/models", timeout=self.health_timeout_s)
            cards = response.json().get("data") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:  # ValueError: not JSON; AttributeError: no object
            logger.warning(
                "remote engine: no model card from %s/models (%s); its context is unknown", self.base_url, exc
            )
            return None
        card = next((c for c in cards or [] if isinstance(c, dict) and c.get("id") == self.model_name), None)
        length = card.get("max_model_len") if card is not None else None
        if not (isinstance(length, int) and not isinstance(length, bool) and length > 0):
            logger.warning(
                "remote engine: %s/models states no max_model_len for %r; admission uses the scorer's context",
                self.base_url,
                self.model_name,
            )
            return None
        return length

    def _probe(self) -> bool:
        try:
            return self.client.get(f"{self.base_url}/models", timeout=self.health_timeout_s).status_code == 200
        except (httpx.HTTPError, RuntimeError):  # RuntimeError: the client was closed under the probe
            return False

    def _post(self, path: str, body: dict[str, Any], cancel: threading.Event | None) -> dict[str, Any]:
        request_id = current_request_id() or f"l2t-{uuid.uuid4().hex}"
        attempts = self.max_retries + 1
        last_error = "no attempt made"
        with CallWatch(cancel, time.monotonic() + self.timeout_s) as watch:
            for attempt in range(1, attempts + 1):
                if watch.cancelled:
                    raise Cancelled("cancelled before the remote call")
                remaining = watch.remaining_s()
                if remaining <= 0:
                    raise EngineError(f"remote engine gave no answer within {self.timeout_s:g}s: {last_error}")
                logger.debug("remote engine: request %s, attempt %d of %d", request_id, attempt, attempts)
                try:
                    response = self.client.post(
                        f"{self.base_url}{path}",
                        json=body,
                        headers={"X-Request-Id": request_id},
                        timeout=httpx.Timeout(remaining, connect=min(CONNECT_TIMEOUT_S, remaining)),
                        extensions={"trace": watch.trace},
                    )
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    if watch.cancelled:
                        raise Cancelled("cancelled during the remote call") from exc
                    last_error, delay = f"connection failed: {exc}", self._backoff_s(attempt)
                except httpx.TransportError as exc:
                    raise self._in_flight_failure(watch, request_id, exc) from exc
                else:
                    if response.status_code == 200:
                        return _json_object(response, request_id)
                    last_error = f"HTTP {response.status_code}: {response.text[:300]}"
                    if response.status_code not in RETRYABLE_STATUS:
                        raise EngineError(f"remote engine rejected the request: {last_error} (request {request_id})")
                    delay = max(self._backoff_s(attempt), min(_retry_after_s(response), self.max_wait_s))
                if attempt == attempts:
                    break
                if delay >= watch.remaining_s():
                    raise EngineError(
                        f"remote engine failed ({last_error}); its next attempt, in {delay:.1f}s, would start "
                        f"past the request's {self.timeout_s:g}s"
                    )
                logger.warning(
                    "remote engine: request %s, attempt %d of %d failed (%s); retrying in %.1fs",
                    request_id,
                    attempt,
                    attempts,
                    last_error,
                    delay,
                )
                if watch.wait_cancelled(delay):
                    raise Cancelled("cancelled while waiting to retry")
        raise EngineError(f"remote engine failed after {attempts} attempts: {last_error}")

    def _backoff_s(self, attempt: int) -> float:
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_wait_s)

    def _in_flight_failure(self, watch: CallWatch, request_id: str, exc: httpx.TransportError) -> Exception:
        """What a failure after the request was sent means; none is retried."""
        if watch.cancelled:
            return Cancelled("cancelled during the remote call")
        logger.warning("remote engine: request %s failed in flight: %s", request_id, exc)
        if watch.remaining_s() <= 0 or isinstance(exc, httpx.TimeoutException):
            return EngineError(f"remote engine gave no answer within {self.timeout_s:g}s (request {request_id})")
        return EngineError(
            f"remote engine connection broke during request {request_id} ({type(exc).__name__}: {exc}); "
            "not retried, since the remote may have started on it"
        )


class HealthProbe:
    """A remote's health as a background thread last saw it, so that asking costs nothing.

    The first probe runs in the constructor (the engine is built off the event loop, while the server
    loads), so the state is known before the first request; afterwards one probe runs every
    `interval_s` until `close()`.
    """

    def __init__(self, probe: Callable[[], bool], interval_s: float) -> None:
        self._probe = probe
        self.interval_s = interval_s
        self.healthy = probe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="l2t-remote-health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            state = self._probe()
            if not self._stop.is_set():
                self.healthy = state

    def close(self, timeout_s: float) -> None:
        """Stop probing; waits at most `timeout_s` for a probe in flight to end."""
        self._stop.set()
        self._thread.join(timeout_s)


class CallWatch:
    """Shuts the socket of a call's current attempt down once the call is cancelled or past its deadline.

    Closing an httpx client from another thread does not wake a read blocked on its socket (the
    kernel keeps the file open until the read returns, up to the read timeout); `shutdown` does, at
    once, and sends the remote a FIN, so a vLLM server aborts the generation. The socket is caught
    through httpcore's `trace` request extension when an attempt connects.
    """

    def __init__(self, cancel: threading.Event | None, deadline: float) -> None:
        self.cancel = cancel
        self.deadline = deadline
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._tripped = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="l2t-remote-call", daemon=True)

    def __enter__(self) -> CallWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()

    def wait_cancelled(self, seconds: float) -> bool:
        """Sleep `seconds`; True as soon as the call is cancelled."""
        if self.cancel is None:
            time.sleep(seconds)
            return False
        return self.cancel.wait(seconds)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        sock = info["return_value"].get_extra_info("socket")
        with self._lock:
            self._socket, tripped = sock, self._tripped
        if tripped:  # cancelled while connecting
            _shut_down(sock)

    def _watch(self) -> None:
        while not self._done.wait(min(WATCH_INTERVAL_S, max(0.0, self.remaining_s()))):
            if self.cancelled or self.remaining_s() <= 0:
                with self._lock:
                    self._tripped, sock = True, self._socket
                if sock is not None:
                    _shut_down(sock)
                return


def _generation(choice: dict[str, Any], per_choice: int) -> Generation:
    """One choice of a `/v1/completions` response: its sampled ids where the remote returns them (then they
    are the token count), else the count it reports (l2t servers per choice, others only in total)."""
    ids = tuple(int(i) for i in choice.get("token_ids") or ())
    return Generation(
        text=choice.get("text", ""),
        n_tokens=len(ids) if ids else int(choice.get("completion_tokens", per_choice)),
        finish_reason=choice.get("finish_reason") or "stop",
        token_ids=ids,
    )


def _prompt_tail(choice: dict[str, Any], ids: Sequence[int], n: int) -> tuple[float, ...]:
    """log p of the last n prompt ids from one choice's `prompt_logprobs` (vLLM's JSON: per position a map
    from token id, as a string, to its `logprob`; None at position 0)."""
    positions = choice.get("prompt_logprobs")
    if not isinstance(positions, list) or len(positions) != len(ids):
        raise EngineError(
            "the remote returned no prompt_logprobs for its prompt tokens: scoring on the engine "
            "(scorer=engine) needs vLLM's OpenAI server, which has this extension of /v1/completions"
        )
    try:
        return tuple(float(positions[t][str(ids[t])]["logprob"]) for t in range(len(ids) - n, len(ids)))
    except (KeyError, TypeError, ValueError) as exc:
        raise EngineError(f"the remote's prompt_logprobs do not hold the prompt's own tokens: {exc}") from exc


def _shut_down(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: the attempt ended by itself
        sock.shutdown(socket.SHUT_RDWR)


def _retry_after_s(response: httpx.Response) -> float:
    """Retry-After in seconds (the HTTP-date form is not used by model servers and counts as none)."""
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdigit() else 0.0


def _json_object(response: httpx.Response, request_id: str) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as exc:
        raise EngineError(f"remote engine answered request {request_id} with invalid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise EngineError(f"remote engine answered request {request_id} with {type(payload).__name__}, not an object")
    return payload
