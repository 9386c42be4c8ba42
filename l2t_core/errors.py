"""Whose fault an error is: `InvalidRequest` is the caller's (bad settings, a missing reference), every
other exception is ours.

The HTTP edge maps `InvalidRequest` to a 4xx with its message and anything else to a 500 with the
request id; the CLI prints it as a one-line error. It subclasses `ValueError` so that code catching
bad values keeps working, but the edge never maps a bare `ValueError` to the client.
"""

from __future__ import annotations


class InvalidRequest(ValueError):
    """The caller's input cannot be served as given; the message says what to change. `param` names the
    field, `code` the kind of refusal where a client may act on it (OpenAI's `context_length_exceeded`)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code
