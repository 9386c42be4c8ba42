"""Recover episodes from any completion text, never raising.

Tagged text (`<episode_k>…</episode_k>`) is split on its tags, tolerating wrong or missing numbers,
an unclosed last tag, nesting, repeats and stray closing tags. Untagged text (the common case for
small models: SmolLM2-135M wrote no tag in 480 samples) is split on blank lines, then on line breaks.
Tiny fragments are merged into a neighbour and K is capped by merging the shortest adjacent pair.

Every episode is a contiguous character span of the completion with `text == completion[start:end]`,
so a client can audit the split. Text before the first episode belongs to the prompt side of the
state s_1; text after the last episode is the answer part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_MAX_EPISODES = 30
DEFAULT_MIN_CHARS = 12  # untagged fragments with fewer non-space characters join a neighbour

_OPEN = re.compile(r"<\s*episode[\s_-]*(\d*)\s*>", re.IGNORECASE)
_CLOSE = re.compile(r"<\s*/\s*episode[\s_-]*(\d*)\s*>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")
_LINE_BREAKS = re.compile(r"\n\s*")
# A final segment that starts like this is the answer part, not a reasoning step (used with .match(text, pos)).
_ANSWER_LEAD = re.compile(
    r"\s*(?:\*\*)?(?:####|\\boxed|(?:so,?\s+|therefore,?\s+|thus,?\s+)?(?:the\s+)?(?:final\s+)?answer\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Episode:
    index: int  # 1-based position in the completion (tag numbers are not trusted)
    start: int  # character offset, inclusive
    end: int  # character offset, exclusive
    text: str  # completion[start:end], tags included

    @property
    def n_chars(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class ParsedCompletion:
    text: str
    episodes: tuple[Episode, ...]
    answer_start: int  # the answer part is text[answer_start:]
    tagged: bool  # True when the split came from <episode_k> tags

    @property
    def answer_text(self) -> str:
        return self.text[self.answer_start :]

    @property
    def prompt_side_end(self) -> int:
        """End of the text that precedes the first episode (it belongs to the state s_1)."""
        return self.episodes[0].start if self.episodes else self.answer_start


Span = tuple[int, int]


def parse_episodes(
    text: str, max_episodes: int = DEFAULT_MAX_EPISODES, min_chars: int = DEFAULT_MIN_CHARS
) -> ParsedCompletion:
    """Split a completion into episodes and an answer part. Never raises on any string."""
    max_episodes = max(1, max_episodes)
    spans = _tagged_spans(text)
    tagged = bool(spans)
    if tagged:
        answer_start = spans[-1][1]
    else:
        spans, answer_start = _untagged_spans(text, min_chars)
    spans = _cap(spans, max_episodes)
    episodes = tuple(Episode(i + 1, s, e, text[s:e]) for i, (s, e) in enumerate(spans))
    return ParsedCompletion(text, episodes, answer_start, tagged)


def episode_body(text: str) -> str:
    """An episode's words without its `<episode_k>` tags (a step as a reader, or a PRM, should see it)."""
    return _CLOSE.sub("", _OPEN.sub("", text)).strip()


def _tagged_spans(text: str) -> list[Span]:
    events = sorted(
        [(m.start(), m.end(), "open") for m in _OPEN.finditer(text)]
        + [(m.start(), m.end(), "close") for m in _CLOSE.finditer(text)]
    )
    if not any(kind == "open" for _, _, kind in events):
        return []
    spans: list[Span] = []
    open_at: int | None = None
    last_end = _first_think_body_start(text)
    for start, end, kind in events:
        if kind == "open":
            if open_at is not None:  # nested or unclosed: the new tag ends the open episode
                spans.append((open_at, start))
            open_at = start
        elif open_at is not None:  # a closing tag ends the open episode, whatever its number
            spans.append((open_at, end))
            open_at = None
            last_end = end
        else:  # stray closing tag: the untagged text since the last episode is an episode
            lead = len(text[last_end:start]) - len(text[last_end:start].lstrip())
            if text[last_end + lead : start].strip():
                spans.append((last_end + lead, end))
            last_end = end
        if spans:
            last_end = max(last_end, spans[-1][1])
    if open_at is not None:
        spans.append((open_at, _unclosed_end(text, open_at)))
    return [s for s in spans if s[1] > s[0]]


def _first_think_body_start(text: str) -> int:
    m = _THINK_OPEN.search(text)
    return m.end() if m else 0


def _unclosed_end(text: str, start: int) -> int:
    """Where an unclosed last episode stops: at </think>, else at a final-answer line, else at the end."""
    tag = _OPEN.match(text, start)
    body_from = tag.end() if tag else start
    think_close = _THINK_CLOSE.search(text, body_from)
    if think_close:
        return think_close.start()
    for m in _LINE_BREAKS.finditer(text, body_from):
        if _ANSWER_LEAD.match(text, m.end()) and text[body_from : m.start()].strip():
            return m.start()
    return len(text.rstrip()) if text[body_from:].strip() else len(text)


def _untagged_spans(text: str, min_chars: int) -> tuple[list[Span], int]:
    body_start = _first_think_body_start(text)
    think_close = _THINK_CLOSE.search(text, body_start)
    body_end = think_close.start() if think_close else len(text)
    spans = _split(text, body_start, body_end, _BLANK_LINES)
    if len(spans) == 1:
        spans = _split(text, body_start, body_end, _LINE_BREAKS)
    answer_start = think_close.start() if think_close else len(text)
    if not think_close and len(spans) >= 2 and _ANSWER_LEAD.match(text, spans[-1][0]):
        answer_start = spans.pop()[0]
    return _merge_tiny(text, spans, min_chars), answer_start


def _split(text: str, start: int, end: int, separator: re.Pattern[str]) -> list[Span]:
    spans: list[Span] = []
    cursor = start
    for m in separator.finditer(text, start, end):
        spans.append((cursor, m.start()))
        cursor = m.end()
    spans.append((cursor, end))
    stripped = []
    for s, e in spans:
        piece = text[s:e]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if e - trail > s + lead:
            stripped.append((s + lead, e - trail))
    return stripped


def _merge_tiny(text: str, spans: list[Span], min_chars: int) -> list[Span]:
    merged = list(spans)
    i = 0
    while len(merged) > 1 and i < len(merged):
        s, e = merged[i]
        if len("".join(text[s:e].split())) >= min_chars:
            i += 1
            continue
        if i + 1 < len(merged):  # join the following fragment
            merged[i : i + 2] = [(s, merged[i + 1][1])]
        else:  # the last fragment joins the one before it
            merged[i - 1 : i + 1] = [(merged[i - 1][0], e)]
            i -= 1
    return merged


def _cap(spans: list[Span], max_episodes: int) -> list[Span]:
    """Merge the adjacent pair with the fewest characters until at most `max_episodes` remain."""
    capped = list(spans)
    while len(capped) > max_episodes:
        i = min(range(len(capped) - 1), key=lambda j: capped[j + 1][1] - capped[j][0])
        capped[i : i + 2] = [(capped[i][0], capped[i + 1][1])]
    return capped
