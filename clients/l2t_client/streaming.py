"""A streamed OpenAI-route response as an iterator of typed chunks, sync (`ChunkStream`) and async
(`AsyncChunkStream`).

The body is server-sent events: `data: <json chunk>` events, the last `data: [DONE]`. A stream that
ends without `[DONE]` failed on the server after it had started (its status was already 200), so it
raises `L2TError` with code `incomplete_stream` rather than passing for a whole answer. A stream is
never retried once it has started: the caller may already have used its first chunks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Generic, TypeVar

import httpx

from l2t_client.decoding import Model, SchemaMismatch
from l2t_client.errors import L2TConnectionError, L2TError

DONE = "[DONE]"
C = TypeVar("C", bound=Model)


class EventParser:
    """Lines in, each complete event's `data` out (multi-line data joined with newlines; comments and
    other fields such as `event:` or `id:` skipped, as the SSE specification says)."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        line = line.rstrip("\r\n")
        if not line:
            data, self._data = self._data, []
            return "\n".join(data) if data else None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))
        return None


def _chunk(kind: type[C], data: str, strict: bool) -> C:
    try:
        parsed = json.loads(data)
    except ValueError:
        raise SchemaMismatch(f"a stream event is not JSON: {data[:200]!r}") from None
    return kind.from_json(parsed, strict)


def _incomplete(response: httpx.Response) -> L2TError:
    message = "the stream ended before [DONE]: the server failed after it started (its log has the cause)"
    return L2TError(response.status_code, message, "server_error", "incomplete_stream")


class ChunkStream(Generic[C]):
    """Iterate for the chunks; close it (or use `with`) to stop early and free the connection."""

    def __init__(self, response: httpx.Response, kind: type[C], strict: bool = False) -> None:
        self.response = response
        self._chunks = self._iterate(kind, strict)

    def __iter__(self) -> Iterator[C]:
        return self._chunks

    def __next__(self) -> C:
        return next(self._chunks)

    def __enter__(self) -> ChunkStream[C]:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._chunks.close()
        self.response.close()

    def _iterate(self, kind: type[C], strict: bool) -> Generator[C, None, None]:
        parser = EventParser()
        try:
            for line in self.response.iter_lines():
                data = parser.feed(line)
                if data == DONE:
                    return
                if data is not None:
                    yield _chunk(kind, data, strict)
            if parser.feed("") == DONE:  # the body ended right after its last event
                return
        except httpx.TransportError as exc:
            raise L2TConnectionError(f"the stream broke off: {type(exc).__name__}: {exc}") from exc
        finally:
            self.response.close()
        raise _incomplete(self.response)


class AsyncChunkStream(Generic[C]):
    """`async for` the chunks; `aclose` it (or use `async with`) to stop early and free the connection."""

    def __init__(self, response: httpx.Response, kind: type[C], strict: bool = False) -> None:
        self.response = response
        self._chunks = self._iterate(kind, strict)

    def __aiter__(self) -> AsyncIterator[C]:
        return self._chunks

    async def __anext__(self) -> C:
        return await anext(self._chunks)

    async def __aenter__(self) -> AsyncChunkStream[C]:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._chunks.aclose()
        await self.response.aclose()

    async def _iterate(self, kind: type[C], strict: bool) -> AsyncGenerator[C, None]:
        parser = EventParser()
        try:
            async for line in self.response.aiter_lines():
                data = parser.feed(line)
                if data == DONE:
                    return
                if data is not None:
                    yield _chunk(kind, data, strict)
            if parser.feed("") == DONE:  # the body ended right after its last event
                return
        except httpx.TransportError as exc:
            raise L2TConnectionError(f"the stream broke off: {type(exc).__name__}: {exc}") from exc
        finally:
            await self.response.aclose()
        raise _incomplete(self.response)
