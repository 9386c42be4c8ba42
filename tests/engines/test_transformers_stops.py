"""Stop strings on the embedded engine: bounded in number and length for every engine, matched as soon
as the text holds them (characters split across tokens included), and at their longest neither slow
nor leaving memory behind (the real SmolLM2 and its tokenizer)."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transformers.generation.stopping_criteria import STOP_STRING_EMBEDDING_CACHE

from l2t_core.engines.base import MAX_STOP_CHARS, MAX_STOP_STRINGS, SamplingParams
from l2t_core.engines.transformers_engine import TransformersEngine, _StopOnText
from l2t_core.errors import InvalidRequest
from l2t_core.tokens import encode_text


@pytest.fixture(scope="module")
def engine(loaded_model: Any) -> Iterator[TransformersEngine]:
    engine = TransformersEngine(loaded_model)
    yield engine
    engine.close()


def rss_mb() -> float:
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.parametrize(
    ("stop", "message"),
    [
        (("a",) * (MAX_STOP_STRINGS + 1), f"at most {MAX_STOP_STRINGS} stop strings"),
        (("x" * (MAX_STOP_CHARS + 1),), f"{MAX_STOP_CHARS + 1} characters long; the limit is {MAX_STOP_CHARS}"),
        (("\n", ""), "stop string is empty"),
    ],
)
def test_stop_strings_are_bounded_for_every_engine(stop: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as error:
        SamplingParams(stop=stop)
    assert error.value.param == "stop"
    SamplingParams(stop=("y" * MAX_STOP_CHARS,) * MAX_STOP_STRINGS)  # the limits themselves are allowed


def test_a_stop_is_matched_at_the_token_that_completes_it(loaded_model: Any) -> None:
    """Fed token by token, the check fires exactly at the first token whose full decode holds the stop,
    for stops inside a token, across tokens, and inside characters that span several byte tokens."""
    tokenizer = loaded_model.tokenizer
    text = "naïve café: 日本語 text, then 🙂 and the end"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    for stop in ("caf", "é: 日", "本語 t", "🙂", " the end"):
        first = next(k for k in range(1, len(ids) + 1) if stop in tokenizer.decode(ids[:k]))
        check = _StopOnText(tokenizer, (stop, "never in this text"), rows=1)
        fired = [check._read(0, token) for token in ids]
        assert fired.index(True) == first - 1, stop


def test_generation_stops_at_the_stop_string(engine: TransformersEngine) -> None:
    full = engine.generate(
        encode_text(engine.loaded.tokenizer, "1, 2, 3,"), SamplingParams(max_tokens=16, temperature=0)
    ).generations[0]
    stopped = engine.generate(
        encode_text(engine.loaded.tokenizer, "1, 2, 3,"), SamplingParams(max_tokens=16, temperature=0, stop=(" 6",))
    ).generations[0]
    assert " 6" in full.text
    assert stopped.text == full.text[: full.text.index(" 6") + 2] and stopped.finish_reason == "stop"
    assert stopped.n_tokens < full.n_tokens  # generation ended there, not only the text


def test_the_longest_stops_cost_little_and_leave_no_memory_behind(engine: TransformersEngine) -> None:
    """4 stop strings of the maximum length (repetitive ones, the costliest kind for transformers' own
    matcher: a table of 49k × 1,277 entries and tensors of rows × 256² per step) on 8 rows: about as fast as
    no stops, and the process's resident memory back within 150 MB of what it was before."""
    prompt = "Write a long story about a dragon.\n"
    plain = SamplingParams(n=8, max_tokens=24, temperature=0)
    longest = tuple(c * MAX_STOP_CHARS for c in "ab e")
    engine.generate(
        encode_text(engine.loaded.tokenizer, prompt), SamplingParams(n=8, max_tokens=24, temperature=0, stop=("\n\n",))
    )  # warm-up
    gc.collect()
    baseline = rss_mb()
    started = time.perf_counter()
    engine.generate(encode_text(engine.loaded.tokenizer, prompt), plain)
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    batch = engine.generate(
        encode_text(engine.loaded.tokenizer, prompt), SamplingParams(n=8, max_tokens=24, temperature=0, stop=longest)
    )
    stops_s = time.perf_counter() - started
    gc.collect()
    grown = rss_mb() - baseline
    print(f"no stops {plain_s:.2f} s, 4 × {MAX_STOP_CHARS}-char stops {stops_s:.2f} s, RSS {grown:+.0f} MB")
    assert [g.n_tokens for g in batch.generations] == [24] * 8  # no stop matched: every row ran to the end
    assert stops_s < 2 * plain_s + 2.0  # loose: the machine is shared; the check itself is timed below
    assert grown < 150
    assert not STOP_STRING_EMBEDDING_CACHE  # transformers' process-wide table cache is never filled


def test_the_stop_check_costs_the_same_for_the_longest_stops(loaded_model: Any) -> None:
    """The check's own time on a full batch (64 rows) over 256 steps: a bounded decode per row and step,
    not one that grows with the stop length (decoding a window as long as the stop took 60 ms a step)."""
    tokenizer = loaded_model.tokenizer
    ids = tokenizer(["Once upon a time, a dragon lived in the hills above the town. " * 40] * 64, return_tensors="pt")
    tokens = ids["input_ids"][:, :257]
    timings = {}
    for stop in (("\n\n",), tuple(c * MAX_STOP_CHARS for c in "ab e")):
        check = _StopOnText(tokenizer, stop, rows=64)
        started = time.perf_counter()
        for step in range(1, tokens.shape[1]):
            done = check(tokens[:, : step + 1], None)
        timings[len(stop[0])] = time.perf_counter() - started
        assert not done.any()
    print({f"{length} chars": f"{seconds * 1000 / 256:.2f} ms/step" for length, seconds in timings.items()})
    assert timings[MAX_STOP_CHARS] < 3 * timings[2] + 0.5
