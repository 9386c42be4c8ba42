"""Client for an l2t server: sync `L2TClient` and async `AsyncL2TClient`, typed results, bounded retries on 503."""

from l2t_client.client import AsyncL2TClient, L2TClient, L2TError
from l2t_client.types import Candidate, Episode, GenerateResult, ScoreResult, Timings, Usage

__all__ = [
    "AsyncL2TClient",
    "Candidate",
    "Episode",
    "GenerateResult",
    "L2TClient",
    "L2TError",
    "ScoreResult",
    "Timings",
    "Usage",
]
