"""Which answer string J_k is the probability of, per candidate (DESIGN §3: reference | self | consensus)."""

from __future__ import annotations

from collections import Counter

from l2t_core.answers import normalize_answer
from l2t_core.errors import InvalidRequest


def choose_targets(answers: list[str | None], mode: str, reference: str | None = None) -> list[str | None]:
    """One target per candidate; None where there is nothing to aim at (self mode, no extracted answer).

    A given reference always wins: with a reference, every candidate is measured against it.
    Consensus is the most frequent normalised answer in the pool (ties: the one seen first), written
    as its first occurrence.
    """
    if reference is not None and reference.strip():
        return [reference.strip()] * len(answers)
    if mode == "reference":
        raise InvalidRequest("target 'reference' needs a reference answer")
    if mode == "self":
        return list(answers)
    if mode != "consensus":
        raise InvalidRequest(f"unknown target mode {mode!r}")
    ranked = distinct_answers(answers)
    return [ranked[0] if ranked else None] * len(answers)


def distinct_answers(answers: list[str | None], limit: int | None = None) -> list[str]:
    """The pool's distinct answers (normalised), most frequent first (ties: first seen), each written as
    its first occurrence; at most `limit`. The first is the consensus; multi-target J probes them all."""
    written: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for answer in answers:
        if answer is None:
            continue
        key = normalize_answer(answer)
        written.setdefault(key, answer)
        counts[key] += 1
    order = sorted(written, key=lambda key: -counts[key])  # stable: ties keep first-seen order
    return [written[key] for key in order[:limit]]
