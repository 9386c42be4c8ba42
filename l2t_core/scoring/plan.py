"""What must be measured for one candidate: its tokens, episode token spans, the K+1 cut points and probes.

Both scoring paths (naive and packed) consume the same plan, so they measure the same quantities on
the same token ids; they differ only in how the model is run.

An answer probe is [prompt ‖ completion[:cut] ‖ probe ‖ answer]: J is the probability of the answer's
tokens. The paper's J_k aims one answer (the target) at the K+1 episode cuts. Selection also wants the
path's probability of *every* answer the pool gave (multi-target J, `answer_targets`), at the episode
cuts and at the `answer_cut` (just before the path first writes its own answer, so the probe reads
what its reasoning implies rather than a copy of what it wrote). All answers of one cut share one probe
prefix: a `ProbeGroup`.

Every answer is scored followed by the target suffix (`}`), which marks where the answer ends. With the
'string' suffix probability the suffix position counts every token whose text starts with the suffix
(`suffix_ids`): a model that puts its mass on a merged token (`}.`) then still closes the answer. The
answer is then tokenised on its own and the suffix's own token appended, so the suffix is one position.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from l2t_core.answers import extract_answer
from l2t_core.engines.detokenize import IncrementalDetokenizer
from l2t_core.episodes import ParsedCompletion, parse_episodes
from l2t_core.reward import RewardConfig, choose_targets, distinct_answers


@dataclass(frozen=True)
class ProbeGroup:
    """Answers probed after one prefix: [completion[:cut] ‖ probe] once, then each target's tokens after it."""

    cut: int
    targets: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class CandidatePlan:
    parsed: ParsedCompletion
    token_ids: list[int]  # the completion's tokens: as sampled (EOS included), or its text's (no special tokens)
    token_starts: list[int]  # character offset where each token starts
    episode_spans: list[tuple[int, int]]  # per episode: [token_start, token_end) in token_ids
    cuts: list[int]  # K+1 prefix lengths: cuts[0] before episode 1, cuts[k] after episode k
    answer: str | None  # the candidate's extracted final answer
    target: str | None  # the answer J is measured against (None: no J, gains are 0)
    probe_ids: list[int]  # answer-forcing probe tokens, scored as context only
    target_ids: list[int]  # target answer + suffix tokens, whose probability is J
    pool_answers: tuple[str, ...] = ()  # the pool's distinct answers probed by multi-target J (empty: off)
    answer_targets: tuple[tuple[int, ...], ...] = ()  # their tokens (answer + suffix)
    answer_cut: int = 0  # prefix length before the path first writes its own answer (cuts[-1] if it never does)
    suffix_ids: tuple[int, ...] = ()  # tokens whose mass scores each target's last position (empty: its own token)

    @property
    def answer_probe_cuts(self) -> list[int]:
        """Where every pool answer is probed: the K+1 episode cuts, then the answer cut."""
        return [*self.cuts, self.answer_cut] if self.answer_targets else []

    def probe_groups(self) -> list[ProbeGroup]:
        """Every distinct (cut, answers) probe the candidate needs, in a fixed order."""
        own = [tuple(self.target_ids)] if self.target is not None else []
        groups: dict[int, list[tuple[int, ...]]] = {}
        for cut in self.cuts:
            groups.setdefault(cut, []).extend(own)
        for cut in self.answer_probe_cuts:
            groups.setdefault(cut, []).extend(self.answer_targets)
        return [ProbeGroup(cut, tuple(dict.fromkeys(targets))) for cut, targets in groups.items() if targets]

    @property
    def probe_token_count(self) -> int:
        """Probe rows a scorer runs for this candidate (before any sharing between candidates)."""
        return sum(len(self.probe_ids) + sum(map(len, g.targets)) for g in self.probe_groups())


def tokenize_completion(tokenizer: Any, text: str) -> tuple[list[int], list[int]]:
    """Token ids and the start character of each token, from one tokenisation of the whole text."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    starts: list[int] = []
    for start, _ in encoded["offset_mapping"]:
        starts.append(max(int(start), starts[-1] if starts else 0))  # monotone even for odd byte tokens
    return ids, starts


def sampled_token_starts(tokenizer: Any, ids: Sequence[int]) -> list[int]:
    """The start character of each sampled token in the text the ids decode to (special tokens, like the
    EOS, decode to nothing and start where the text ends; a token inside a split character starts where
    that character does). The ids are not re-tokenized: these offsets place episode tags on them."""
    detokenizer = IncrementalDetokenizer(tokenizer)
    starts: list[int] = []
    length = 0
    for token in ids:
        starts.append(length)
        length += len(detokenizer.push(int(token)))
    return starts


def token_index_at(token_starts: list[int], char: int) -> int:
    """The first token that starts at or after `char`; a token straddling `char` belongs before it."""
    return bisect.bisect_left(token_starts, char)


def first_statement(text: str, answer: str | None, end: int) -> int | None:
    """Character offset where `answer` first appears in text[:end] as a whole (not inside a longer number)."""
    if not answer:
        return None
    found = re.search(rf"(?<![\w.]){re.escape(answer)}(?![\w]|\.\d)", text[:end])
    return found.start() if found else None


def suffix_token_set(tokenizer: Any, suffix: str) -> tuple[int, ...]:
    """The suffix's own token, then every other token whose text starts with the suffix (`}` -> `}`, `}.`, `},`…)."""
    own = list(tokenizer(suffix, add_special_tokens=False)["input_ids"])
    if len(own) != 1:
        raise ValueError(f"the 'string' suffix probability needs a one-token suffix; {suffix!r} is {len(own)} tokens")
    starting = [i for i in range(len(tokenizer)) if i != own[0] and tokenizer.decode([i]).startswith(suffix)]
    return (own[0], *starting)


def build_plan(
    tokenizer: Any,
    parsed: ParsedCompletion,
    answer: str | None,
    target: str | None,
    probe: str,
    target_suffix: str,
    pool_answers: tuple[str, ...] = (),
    suffix_ids: tuple[int, ...] = (),
    token_ids: Sequence[int] | None = None,
) -> CandidatePlan:
    """`pool_answers` (written forms) turn on multi-target J: each is probed at every cut and the answer cut.
    `suffix_ids` (from `suffix_token_set`) scores the suffix as a string, not as its own token.
    `token_ids`: the completion as sampled (prefill and EOS included), measured as it is; without them the
    text is tokenized once (`tokenize_completion`)."""
    if token_ids is not None:
        ids, starts = [int(i) for i in token_ids], sampled_token_starts(tokenizer, token_ids)
    else:
        ids, starts = tokenize_completion(tokenizer, parsed.text)
    spans = [(token_index_at(starts, e.start), token_index_at(starts, e.end)) for e in parsed.episodes]
    first = spans[0][0] if spans else token_index_at(starts, parsed.answer_start)
    cuts = [first] + [end for _, end in spans]
    probe_ids: list[int] = []
    target_ids: list[int] = []
    if target is not None or pool_answers:
        probe_ids = list(tokenizer(probe, add_special_tokens=False)["input_ids"])

    def encode(answer: str) -> list[int]:
        if suffix_ids:
            return [*tokenizer(answer, add_special_tokens=False)["input_ids"], suffix_ids[0]]
        return list(tokenizer(answer + target_suffix, add_special_tokens=False)["input_ids"])

    if target is not None:
        target_ids = encode(target)
    answer_targets = tuple(tuple(encode(a)) for a in pool_answers)
    stated = first_statement(parsed.text, answer, parsed.answer_start)
    # The token holding the answer's first character and everything after it stay out of the prefix.
    answer_cut = cuts[-1] if stated is None else max(cuts[0], bisect.bisect_right(starts, stated) - 1)
    return CandidatePlan(
        parsed,
        ids,
        starts,
        spans,
        cuts,
        answer,
        target,
        probe_ids,
        target_ids,
        pool_answers,
        answer_targets,
        answer_cut,
        suffix_ids,
    )


def plan_completions(
    tokenizer: Any,
    completions: list[str],
    reference: str | None,
    config: RewardConfig,
    suffix_ids: tuple[int, ...] = (),
    targets: list[str | None] | None = None,
    answer_probes: int = 0,
    pool_answers: list[str | None] | None = None,
    completion_ids: list[tuple[int, ...]] | None = None,
) -> list[CandidatePlan]:
    """What to measure per completion of one prompt, whichever path measures it (the torch scorer, or the
    engine). `answer_probes` > 0 also probes the pool's distinct answers (those the completions state, or
    `pool_answers`: beam-prune's unfinished paths state none, so it passes the answers their probes
    decoded). `completion_ids`: each completion's sampled ids, scored as they are. `suffix_ids`: the
    'string' suffix probability's tokens (`suffix_token_set`; empty: the suffix's own token)."""
    if completion_ids is not None and len(completion_ids) != len(completions):
        raise ValueError(f"{len(completion_ids)} token-id lists for {len(completions)} completions")
    parsed = [parse_episodes(text, config.max_episodes) for text in completions]
    answers = [extract_answer(text) for text in completions]
    if targets is None:
        targets = choose_targets(answers, config.target, reference)
    elif len(targets) != len(completions):
        raise ValueError(f"{len(targets)} targets for {len(completions)} completions")
    probed = answers if pool_answers is None else pool_answers
    pool = tuple(distinct_answers(probed, answer_probes)) if answer_probes > 0 else ()
    ids: list[tuple[int, ...] | None] = list(completion_ids) if completion_ids is not None else [None] * len(parsed)
    return [
        build_plan(tokenizer, p, a, t, config.probe, config.target_suffix, pool, suffix_ids, i)
        for p, a, t, i in zip(parsed, answers, targets, ids, strict=True)
    ]
