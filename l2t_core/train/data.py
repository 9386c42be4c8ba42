"""Training data: question/answer jsonl, a fixed held-back split, and a deterministic, resumable order."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Example:
    id: str
    question: str
    answer: str


def load_examples(path: str | Path) -> list[Example]:
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append(Example(str(row.get("id", number)), str(row["question"]), str(row["answer"])))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: expected a JSON object with question and answer ({exc})") from exc
    if not rows:
        raise ValueError(f"{path} holds no examples")
    return rows


def split(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, held back): a seeded shuffle, the last `eval_fraction` held back."""
    order = list(examples)
    random.Random(seed).shuffle(order)
    n_eval = int(round(len(order) * eval_fraction))
    return order[: len(order) - n_eval], order[len(order) - n_eval :]


def batch_at(train: list[Example], step: int, batch_size: int, seed: int) -> list[Example]:
    """The questions of optimiser step `step` (0-based): a pure function of (step, seed), so a resumed
    run sees exactly the batches an uninterrupted one would. Each epoch is a fresh seeded permutation."""
    out = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, index = divmod(position, len(train))
        order = list(range(len(train)))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        out.append(train[order[index]])
    return out
