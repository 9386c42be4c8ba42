"""Client for an l2t server: sync `L2TClient` and async `AsyncL2TClient` for /generate, /score and the
OpenAI routes (streamed too), with bounded retries (429, 502, 503, 504, lost connections; Retry-After
honoured) and response types generated from the server's OpenAPI document.

The older names `GenerateResult`, `ScoreResult`, `Candidate`, `Episode`, `Usage` and `Timings` remain as
aliases of the generated `GenerateResponse`, `ScoreResponse`, `CandidateOut`, `EpisodeOut`, `UsageOut` and
`TimingsOut`.
"""

from l2t_client import types
from l2t_client.chunks import ChatChunkChoice, ChatCompletionChunk, ChatDelta, CompletionChunk, CompletionChunkChoice
from l2t_client.client import AsyncL2TClient, L2TClient
from l2t_client.decoding import SchemaMismatch
from l2t_client.errors import L2TConnectionError, L2TError
from l2t_client.retry import RetryPolicy
from l2t_client.streaming import AsyncChunkStream, ChunkStream
from l2t_client.types import *  # noqa: F403 (every generated type, whatever the server adds)
from l2t_client.types import CandidateOut, EpisodeOut, GenerateResponse, ScoreResponse, TimingsOut, UsageOut

GenerateResult = GenerateResponse
ScoreResult = ScoreResponse
Candidate = CandidateOut
Episode = EpisodeOut
Usage = UsageOut
Timings = TimingsOut

__all__ = [
    "AsyncChunkStream",
    "AsyncL2TClient",
    "Candidate",
    "ChatChunkChoice",
    "ChatCompletionChunk",
    "ChatDelta",
    "ChunkStream",
    "CompletionChunk",
    "CompletionChunkChoice",
    "Episode",
    "GenerateResult",
    "L2TClient",
    "L2TConnectionError",
    "L2TError",
    "RetryPolicy",
    "SchemaMismatch",
    "ScoreResult",
    "Timings",
    "Usage",
    *types.__all__,
]
