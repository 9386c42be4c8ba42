"""What a failed call raises: `L2TError` for an error answer (the server's envelope when it sent one),
`L2TConnectionError` when no answer came back."""

from __future__ import annotations

import httpx

from l2t_client.decoding import SchemaMismatch
from l2t_client.types import ErrorResponse


class L2TError(RuntimeError):
    """The server answered with an error status (its `{"error": {...}}` envelope read into the fields)."""

    def __init__(self, status: int | None, message: str, type_: str | None = None, code: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}" if status is not None else message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code


class L2TConnectionError(L2TError):
    """No HTTP answer: the server could not be reached, dropped the connection, or the client's timeout
    ran out (after the retries the client allows). `status` is None."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


def error_from(response: httpx.Response) -> L2TError:
    """The error for an answered status >= 400 (its body must have been read)."""
    try:
        error = ErrorResponse.from_json(response.json()).error
    except (ValueError, SchemaMismatch):  # not the envelope: a proxy's page, say
        return L2TError(response.status_code, response.text[:300])
    return L2TError(response.status_code, error.message, error.type, error.code)
