"""Incremental detokenization (streaming and the stop check) equals a full decode, in constant work per
token; a seeded request leaves the global RNG as it found it; a streamed job is not re-run after its
batch failed (its client would get the failed attempt's text followed by the retry's)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from l2t_core.engines import EngineError, SamplingParams
from l2t_core.engines.detokenize import IncrementalDetokenizer
from l2t_core.engines.transformers_engine import TransformersEngine, _Job
from l2t_core.pipeline import _IncrementalText
from l2t_core.tokens import encode_text

TEXTS = [
    "<episode_1>17 + 25 = 42.</episode_1>\nThe final answer is \\boxed{42}.",
    "日本語のテキスト 🙂 and a word-initial space, then ‘quotes’ — dashes.",
    "  leading spaces\n\nnew lines\ttabs",
]


@pytest.mark.parametrize("text", TEXTS)
def test_pieces_add_up_to_the_full_decode(loaded_model: Any, text: str) -> None:
    tokenizer = loaded_model.tokenizer
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    detokenizer = IncrementalDetokenizer(tokenizer)
    pieces = [detokenizer.push(token) for token in ids]
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
    assert all("\ufffd" not in piece for piece in pieces)  # never half a character


def test_streamed_text_stops_at_the_stop_string_and_holds_back_its_start(loaded_model: Any) -> None:
    tokenizer = loaded_model.tokenizer
    text = TEXTS[0]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    streamed = _IncrementalText(tokenizer, ("</episode_1>",))
    pieces = [streamed.push(token) for token in ids]
    assert "".join(pieces) == text[: text.index("</episode_1>")]
    assert not any("<" in piece and "/" in piece for piece in pieces[-3:])  # the stop never leaked out
    no_stop = _IncrementalText(tokenizer, ())
    assert "".join(no_stop.push(token) for token in [*ids, tokenizer.eos_token_id, *ids]) == text  # EOS ends it


def test_a_seeded_request_leaves_the_global_rng_alone(loaded_model: Any) -> None:
    engine = TransformersEngine(loaded_model)
    try:
        torch.manual_seed(1234)
        expected = torch.rand(3)
        torch.manual_seed(1234)
        engine.generate(encode_text(engine.loaded.tokenizer, "Hello"), SamplingParams(n=1, max_tokens=4, seed=7))
        assert torch.equal(torch.rand(3), expected)  # the request's seed did not reseed everyone else
        first = engine.generate(
            encode_text(engine.loaded.tokenizer, "Hello"), SamplingParams(n=2, max_tokens=6, seed=7)
        )
        second = engine.generate(
            encode_text(engine.loaded.tokenizer, "Hello"), SamplingParams(n=2, max_tokens=6, seed=7)
        )
        assert [g.text for g in first.generations] == [g.text for g in second.generations]
    finally:
        engine.close()


def test_a_streamed_job_is_not_rerun_after_its_batch_failed(loaded_model: Any, monkeypatch: Any) -> None:
    engine = TransformersEngine(loaded_model)
    try:
        params = SamplingParams(n=1, max_tokens=4)
        heard: list[int] = []
        streamed = _Job(
            list(encode_text(engine.loaded.tokenizer, "Hello")),
            params,
            threading.Event(),
            on_token=lambda _r, t: heard.append(t),
        )
        quiet = _Job(list(encode_text(engine.loaded.tokenizer, "Hi")), params, threading.Event())
        real = engine._generate_batch

        def fails_once_streamed(jobs: list[_Job]) -> Any:
            if len(jobs) > 1:
                streamed.streamed = True  # as if its first tokens had gone out before the failure
                raise RuntimeError("a batch-mate broke the batch")
            return real(jobs)

        monkeypatch.setattr(engine, "_generate_batch", fails_once_streamed)
        engine._run_batch([streamed, quiet])
        with pytest.raises(EngineError, match="after its tokens were streamed"):
            streamed.future.result(timeout=60)
        assert len(quiet.future.result(timeout=60).generations) == 1  # the other job was re-run alone
    finally:
        engine.close()
