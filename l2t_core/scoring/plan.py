"""What must be measured for one candidate: its tokens, episode token spans, the K+1 cut points and probe.

Both scoring paths (naive and packed) consume the same plan, so they measure the same quantities on
the same token ids; they differ only in how the model is run.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from l2t_core.episodes import ParsedCompletion


@dataclass(frozen=True)
class CandidatePlan:
    parsed: ParsedCompletion
    token_ids: list[int]  # the completion's tokens (no special tokens)
    token_starts: list[int]  # character offset where each token starts
    episode_spans: list[tuple[int, int]]  # per episode: [token_start, token_end) in token_ids
    cuts: list[int]  # K+1 prefix lengths: cuts[0] before episode 1, cuts[k] after episode k
    answer: str | None  # the candidate's extracted final answer
    target: str | None  # the answer J is measured against (None: no J, gains are 0)
    probe_ids: list[int]  # answer-forcing probe tokens, scored as context only
    target_ids: list[int]  # target answer + suffix tokens, whose probability is J

    @property
    def segment_length(self) -> int:
        return len(self.probe_ids) + len(self.target_ids)


def tokenize_completion(tokenizer: Any, text: str) -> tuple[list[int], list[int]]:
    """Token ids and the start character of each token, from one tokenisation of the whole text."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    starts: list[int] = []
    for start, _ in encoded["offset_mapping"]:
        starts.append(max(int(start), starts[-1] if starts else 0))  # monotone even for odd byte tokens
    return ids, starts


def token_index_at(token_starts: list[int], char: int) -> int:
    """The first token that starts at or after `char`; a token straddling `char` belongs before it."""
    return bisect.bisect_left(token_starts, char)


def build_plan(
    tokenizer: Any,
    parsed: ParsedCompletion,
    answer: str | None,
    target: str | None,
    probe: str,
    target_suffix: str,
) -> CandidatePlan:
    ids, starts = tokenize_completion(tokenizer, parsed.text)
    spans = [(token_index_at(starts, e.start), token_index_at(starts, e.end)) for e in parsed.episodes]
    first = spans[0][0] if spans else token_index_at(starts, parsed.answer_start)
    cuts = [first] + [end for _, end in spans]
    probe_ids: list[int] = []
    target_ids: list[int] = []
    if target is not None:
        probe_ids = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
        target_ids = list(tokenizer(target + target_suffix, add_special_tokens=False)["input_ids"])
    return CandidatePlan(parsed, ids, starts, spans, cuts, answer, target, probe_ids, target_ids)
