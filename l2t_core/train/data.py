"""Training data: question/answer jsonl or seeded graded arithmetic, a fixed held-back split, and a
deterministic, resumable order.

Arithmetic comes from the evaluation's own generator (`l2t_core.eval.tasks.arithmetic`) on another
seed stream, with the evaluation suite's problems removed by question text: the held-back set *is*
the start of `python -m l2t_core.eval --data arithmetic` (seed 0), and no training problem is one of
its first `EVAL_RESERVE` problems, so accuracy measured there is on questions never trained on.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from l2t_core.eval.suites import FILES, suite_file
from l2t_core.eval.tasks.arithmetic import arithmetic_problems

ARITHMETIC = "arithmetic"
EVAL_SEED = 0  # the evaluation suite's default --seed
EVAL_RESERVE = 1000  # its first problems, never trained on (the eval's default --limit is 300)
TRAIN_SEED_STREAM = 1_000_000  # training problems are generated with seed TRAIN_SEED_STREAM + run seed
TRAIN_SIZE = 20_000  # generated before removing the evaluation's questions (add2 has only 29² distinct ones)


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


def arithmetic_split(levels: tuple[str, ...], seed: int) -> tuple[list[Example], list[Example]]:
    """(train, held back) for graded arithmetic at `levels`: held back is the evaluation suite's problems at
    those levels, in its order; train is a separate seed stream minus every question of the reserve."""
    reserve = arithmetic_problems(EVAL_RESERVE, EVAL_SEED)
    excluded = {p.question for p in reserve}
    stream = arithmetic_problems(TRAIN_SIZE, TRAIN_SEED_STREAM + seed, levels)
    train = [Example(p.id, p.question, p.answer) for p in stream if p.question not in excluded]
    held_back = [Example(p.id, p.question, p.answer) for p in reserve if p.level in levels]
    return train, held_back


def load_split(
    data: str, eval_fraction: float, levels: tuple[str, ...], seed: int
) -> tuple[list[Example], list[Example]]:
    """(train, held back) for the config's `data`: the arithmetic source, or a jsonl file (a path, or a data
    set named by its evaluation suite, read from `$L2T_DATA_DIR`) split by `split`."""
    if data == ARITHMETIC:
        return arithmetic_split(levels, seed)
    return split(load_examples(suite_file(data) if data in FILES else data), eval_fraction, seed)
