"""Evaluation problems: a question with an exact reference answer, from a jsonl file or a generator."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str
    solution: str | None = None
    level: str | None = None  # difficulty or subset label, for per-level tables


class DataError(ValueError):
    """A data file or suite name that cannot be turned into problems."""


def load_jsonl(path: str | Path) -> list[Problem]:
    """Problems from a jsonl file with id/question/answer[/solution] fields (the shared data format)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    problems = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                problems.append(
                    Problem(
                        id=str(row.get("id", f"{path.stem}-{line_number}")),
                        question=str(row["question"]),
                        answer=str(row["answer"]),
                        solution=row.get("solution"),
                        level=row.get("level"),
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{line_number}: not a problem row ({exc})") from exc
    if not problems:
        raise DataError(f"{path}: no problems")
    return problems
