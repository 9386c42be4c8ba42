"""The id of the request being served, readable anywhere below the server without passing it down.

The server sets it once per request; a `ContextVar` follows the request into its asyncio tasks, and
into the worker thread because the runtime runs the work inside a copy of the request's context. The
remote engine forwards it (`X-Request-Id`), so one id finds a request in the logs on both sides.
"""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("l2t_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request this code runs for; None outside a server request (CLI, evaluation)."""
    return REQUEST_ID.get()
