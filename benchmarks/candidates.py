"""Deterministic benchmark candidates: tagged reasoning built from real GSM8K solution lines.

Generating 8 × 400 tokens with the 135M model on 2 CPU cores takes minutes and gives lengths we do
not control; the scorer's cost depends only on token counts and K, so we assemble candidates of
chosen K and length from real solution text instead (same tokenizer, same chat prompt).
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

# The shared data beside the checkout; L2T_DATA_DIR names another folder (the GPU box gets a copy in the tree).
DATA = (
    Path(os.environ.get("L2T_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data") / "gsm8k_test.jsonl"
)


def load_gsm8k(path: Path = DATA) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def solution_lines(rows: list[dict[str, str]]) -> list[str]:
    lines = []
    for row in rows:
        for line in row["solution"].splitlines():
            if line.strip() and not line.startswith("####"):
                lines.append(re.sub(r"<<[^>]*>>", "", line).strip())
    return lines


def tagged_candidate(lines: list[str], k: int, target_tokens: int, tokenizer, answer: str, rng: random.Random) -> str:
    """K tagged episodes of real solution text, about `target_tokens` tokens in all, then a boxed answer."""

    def n_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    words = " ".join(rng.sample(lines, 60)).split()[::-1]  # popped from the end, so in reading order
    closing = f"\n</think>\nThe answer is \\boxed{{{answer}}}."
    per_episode = max(8, (target_tokens - n_tokens("<think>\n" + closing)) // k)
    episodes = []
    for i in range(k):
        body: list[str] = []
        while n_tokens(f"<episode_{i + 1}>{' '.join(body)}</episode_{i + 1}>\n") < per_episode:
            body.append(words.pop())
        episodes.append(f"<episode_{i + 1}>{' '.join(body)}</episode_{i + 1}>")
    return "<think>\n" + "\n".join(episodes) + closing


def benchmark_pool(tokenizer, n: int = 8, seed: int = 0) -> tuple[dict[str, str], list[str]]:
    """One GSM8K question and N candidates of 200–600 tokens with K spread over 4–12 (mean 8)."""
    rng = random.Random(seed)
    rows = load_gsm8k()
    question = rows[0]
    lines = solution_lines(rows[1:200])
    ks = [4, 6, 7, 8, 8, 9, 10, 12]
    lengths = [200, 260, 320, 380, 420, 480, 540, 600]
    candidates = []
    for i in range(n):
        answer = question["answer"] if i % 2 == 0 else str(rng.randint(1, 99))
        candidates.append(tagged_candidate(lines, ks[i % len(ks)], lengths[i % len(lengths)], tokenizer, answer, rng))
    return question, candidates
