"""Pull the final answer out of a completion: last `\\boxed{}`, `#### X`, "answer is X", or the last number."""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\s*")
_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(r"answer\s*(?:is|:|=)\s*:?\s*([^\n]+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
# Episode tags carry their index: without removing them, "…so 42.</episode_3>" would answer 3.
_EPISODE_TAG = re.compile(r"</?episode_\d+>")


def extract_answer(text: str) -> str | None:
    """The final answer as written (not normalised), or None when the text has none."""
    text = _EPISODE_TAG.sub(" ", text)
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.strip() or None
    for pattern in (_HASHES, _ANSWER_IS):
        matches = pattern.findall(text)
        if matches:
            answer = _trim_sentence(matches[-1])
            if answer:
                return answer
    numbers = _NUMBER.findall(text)
    return numbers[-1].strip() if numbers else None


def _last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` with balanced braces (or `\\boxed 5`); None if there is none."""
    for m in reversed(list(_BOX.finditer(text))):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : j]
            continue  # unbalanced: try an earlier box
        bare = re.match(r"[^\s$]+", text[i:])
        if bare:
            return bare.group(0)
    return None


def _trim_sentence(fragment: str) -> str:
    """Cut "42. Next we…" to "42" and strip wrapping `$`, `**` and trailing punctuation."""
    fragment = re.split(r"(?<!\d)\.(?:\s|$)|\.\s", fragment + " ", maxsplit=1)[0]
    fragment = fragment.strip().strip("*").strip()
    if fragment.startswith("$") and fragment.endswith("$") and len(fragment) > 1:
        fragment = fragment.strip("$")
    return fragment.rstrip(".;,!").strip()
