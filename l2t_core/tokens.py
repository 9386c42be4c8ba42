"""The one tokenization of text: how a prompt's (or a given completion's) text becomes token ids.

Text is tokenized without the tokenizer's special tokens: a chat template writes its own (BOS included),
and raw text is continued as written. Everything after this point — engines, the scorer, the trainer,
admission — works on these ids, so no stage adds a second BOS or splits the same text differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from l2t_core.errors import InvalidRequest


def encode_text(tokenizer: Any, text: str, param: str = "prompt") -> tuple[int, ...]:
    """`text`'s token ids, or `InvalidRequest` naming `param` for text no tokenizer can take (lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"{param} is not valid Unicode text: {exc.reason} at character {exc.start}", param=param
        ) from exc
    return tuple(int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"])


def check_token_ids(ids: Sequence[int], vocabulary: int, param: str = "prompt") -> None:
    """Refuse an empty prompt or an id outside the model's vocabulary (a token-id prompt from a client)."""
    if not ids:
        raise InvalidRequest(f"{param} is empty: there is nothing to continue", param=param)
    bad = next((i for i in ids if not 0 <= int(i) < vocabulary), None)
    if bad is not None:
        raise InvalidRequest(f"{param} holds token id {bad}, outside the vocabulary of {vocabulary}", param=param)
