"""Candidate completions for scoring tests, built from real GSM8K solutions in every shape the parser meets."""

from __future__ import annotations

import re
from typing import Any


def solution_steps(row: dict[str, Any]) -> list[str]:
    body = row["solution"].split("####")[0]
    return [re.sub(r"<<[^>]*>>", "", line).strip() for line in body.splitlines() if line.strip()]


def tagged(steps: list[str], answer: str) -> str:
    episodes = "\n".join(f"<episode_{i}>{s}</episode_{i}>" for i, s in enumerate(steps, start=1))
    return f"<think>\n{episodes}\n</think>\nThe answer is \\boxed{{{answer}}}."


def candidate_pool(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Named candidates for rows[0]'s question; rows[1:] supply extra text for the long one."""
    row = rows[0]
    steps = solution_steps(row)
    answer = row["answer"]
    # Twenty-two short steps (a step's first words): the shape is what the tests need, and the naive
    # reference path runs one forward per episode prefix, so its cost is the length times the episode count.
    many = [" ".join(s.split()[:6]) for r in rows[1:] for s in solution_steps(r)][:22]
    return {
        "well_formed": tagged(steps, answer),
        "malformed": (
            f"Let me see. <episode_2>{steps[0]}</episode_5> stray words <episode_2>{' '.join(steps[1:])}\n#### {answer}"
        ),
        "single_episode": f"{' '.join(steps)} So the result is \\boxed{{{answer}}}",
        "twenty_plus": tagged(many, answer),
        "untagged": "\n\n".join(steps) + f"\n\nThe answer is {answer}.",
        "wrong_answer": tagged(steps[:1], str(int(answer) + 7)),
        "no_answer": "I am not sure how to do this",
    }
