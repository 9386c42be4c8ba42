"""Incremental detokenization: a sequence's text, token by token, in constant work per token.

Decoding the whole sequence again for every new token costs O(n) per token, O(n²) per sequence. As vLLM's
`detokenize_incrementally` does, only a short window is decoded: the last read tokens (the context a
word-initial space or a character split across byte tokens needs to come out as a full decode gives it)
and the new ones, and the new characters are the difference. A token that ends inside a character gives
nothing until the character is complete.
"""

from __future__ import annotations

from typing import Any


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._start = 0  # where the window decoded with the new tokens starts
        self._read = 0  # tokens whose text has been handed out

    def push(self, token: int) -> str:
        """Append `token`; the characters it completes ("" while a character is still split)."""
        self.ids.append(token)
        before = self.tokenizer.decode(self.ids[self._start : self._read], skip_special_tokens=True)
        after = self.tokenizer.decode(self.ids[self._start :], skip_special_tokens=True)
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self._start, self._read = self._read, len(self.ids)
        return after[len(before) :]
