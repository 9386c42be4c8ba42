"""On-disk caches for evaluation: generated pools and their scores, one JSON file per problem.

Keys hash everything that changes the content (model, sampling parameters, prompt format, question;
for scores also the reward settings that change measurements), so every reranker is compared on the
same candidates, and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from l2t_core.atomic import atomic_write_text
from l2t_core.models.default_gguf import cache_root
from l2t_core.scoring import AnswerProbes, CandidateScore, EpisodeScore


def eval_cache_root() -> Path:
    return cache_root() / "eval"


def content_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def read_json(path: Path) -> Any | None:
    """The cached value, or None when absent or unreadable (a damaged entry is recomputed, not trusted)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value))


def cached_json(path: Path, compute: Callable[[], Any]) -> Any:
    """The value stored at `path`, or `compute()` stored there first (an interrupted run resumes here)."""
    value = read_json(path)
    if value is None:
        value = compute()
        write_json(path, value)
    return value


def score_to_json(score: CandidateScore) -> dict[str, Any]:
    return asdict(score)


def score_from_json(data: dict[str, Any]) -> CandidateScore:
    fields = dict(data)
    fields["episodes"] = tuple(EpisodeScore(**e) for e in fields["episodes"])
    fields["token_ids"] = tuple(fields["token_ids"])
    fields["token_logprobs"] = tuple(fields["token_logprobs"])
    probes = fields.get("answer_probes")
    if probes is not None:
        fields["answer_probes"] = AnswerProbes(
            tuple(probes["answers"]), tuple(probes["cuts"]), tuple(tuple(row) for row in probes["log_j"])
        )
    return CandidateScore(**fields)
