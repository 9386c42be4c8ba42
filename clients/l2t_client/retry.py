"""When a failed call is tried again, and after how long (the openai SDK's conventions, `_should_retry`).

Every l2t route is safe to repeat: none changes state on the server (generation and scoring are pure,
and a request whose client went away is cancelled there), so a retry never does work twice that the
caller would see. What is retried:

- 429 (rate limited), 502 (the engine failed), 503 (busy or loading: the server sends Retry-After),
  504 (the server's request timeout, or a gateway's), and 408 (a proxy's request timeout); or any status
  the server marks with `x-should-retry: true`. Not 500: this server's 500 is an internal fault that the
  same request meets again (the openai SDK retries 500 because its service's are often transient).
  Not 409 either: nothing in this stack answers it.
- No answer at all: connection refused or reset, the server closing the connection without a
  response (a restart, a stale pooled connection), a connect or pool timeout. Not a read timeout: the
  request was running for the whole of the caller's timeout, and a second try would take as long again.

The wait is the server's Retry-After (`retry-after-ms`, seconds, or an HTTP date) when it gives one up
to `max_retry_after_s`; a longer one is not waited for (the call fails at once, as the openai SDK
does). Otherwise it is exponential, `backoff_s * 2**attempt` capped at `max_backoff_s`, less up to 25 %
jitter so that clients refused together do not come back together.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import dataclass

import httpx

RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
# Raised before the request reached the server, or with no answer from it; a read timeout is not here.
RETRY_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 8.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("backoff_s, max_backoff_s and max_retry_after_s must be >= 0")

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again after an error status, or None to give up now."""
        if attempt >= self.max_retries:
            return None
        retry_after = retry_after_s(response.headers)
        if retry_after is not None and retry_after > self.max_retry_after_s:
            return None
        marked = response.headers.get("x-should-retry")
        if marked == "false" or (marked != "true" and response.status_code not in RETRY_STATUSES):
            return None
        if retry_after is not None and retry_after > 0:
            return retry_after
        return self.backoff(attempt)

    def after_error(self, attempt: int, error: Exception) -> float | None:
        """Seconds to wait after a transport error, or None to give up now."""
        if attempt >= self.max_retries or not isinstance(error, RETRY_ERRORS):
            return None
        return self.backoff(attempt)

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_s * 2.0 ** min(attempt, 60), self.max_backoff_s) * (1 - 0.25 * random.random())


def retry_after_s(headers: httpx.Headers) -> float | None:
    """The server's requested wait in seconds, or None if it gave none that parses."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            delay = float(value) / scale
        except ValueError:
            continue
        if not math.isnan(delay):
            return delay  # an infinite wait is a wait over the cap: no retry
    date = email.utils.parsedate_tz(headers.get("retry-after", ""))
    if date is None:
        return None
    return email.utils.mktime_tz(date) - time.time()
