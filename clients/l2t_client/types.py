"""Typed views of the server's JSON (unknown fields are ignored, so newer servers stay readable)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


def _pick(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class Episode:
    index: int
    text: str
    start: int
    end: int
    n_tokens: int
    j_before: float
    j_after: float
    fitting_gain: float
    compression_penalty: float
    reward: float


@dataclass(frozen=True)
class Candidate:
    index: int
    text: str
    answer: str | None
    score: float
    n_tokens: int
    mean_logprob: float
    episodes: list[Episode]
    finish_reason: str | None = None
    tagged: bool | None = None  # the model wrote <episode_k> tags (else the fallback split was used)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Candidate:
        episodes = [Episode(**_pick(Episode, e)) for e in data.get("episodes", [])]
        return cls(**{**_pick(cls, data), "episodes": episodes})


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    scoring_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class Timings:
    generate_ms: float
    score_ms: float


@dataclass(frozen=True)
class GenerateResult:
    id: str
    model: str
    strategy: str
    chosen: Candidate
    candidates: list[Candidate] | None
    usage: Usage
    timings: Timings
    prompt_format: str | None = None
    scorer_model: str | None = None  # the model that measured J and rewards (servers before it: absent)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerateResult:
        candidates = data.get("candidates")
        return cls(
            id=data["id"],
            model=data["model"],
            strategy=data["strategy"],
            chosen=Candidate.from_json(data["chosen"]),
            candidates=[Candidate.from_json(c) for c in candidates] if candidates is not None else None,
            usage=Usage(**_pick(Usage, data["usage"])),
            timings=Timings(**_pick(Timings, data["timings"])),
            prompt_format=data.get("prompt_format"),
            scorer_model=data.get("scorer_model"),
        )


@dataclass(frozen=True)
class ScoreResult:
    id: str
    model: str
    candidates: list[Candidate]
    usage: Usage
    scorer_model: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScoreResult:
        return cls(
            id=data["id"],
            model=data["model"],
            candidates=[Candidate.from_json(c) for c in data["candidates"]],
            usage=Usage(**_pick(Usage, data["usage"])),
            scorer_model=data.get("scorer_model"),
        )
