"""Presence and frequency penalties and the logit bias: `SamplingParams`' ranges, the transformers engine's
processor against a slow reference (OpenAI's formula written out token by token), and a bias that wins
before top-p. On the tiny random model (tests/fakes.py): the formula is the subject, not the model."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import torch

from l2t_core.engines import SamplingParams
from l2t_core.engines.logit_shaping import PenaltyProcessor
from l2t_core.engines.transformers_engine import TransformersEngine
from l2t_core.errors import InvalidRequest
from l2t_core.tokens import encode_text

PROMPT = "What is 3 + 4?"


@pytest.fixture(scope="module")
def engine(scorer_model):
    engine = TransformersEngine(scorer_model, batch_window_s=0.5)  # concurrent requests below share a window
    yield engine
    engine.close()


def penalised(logits: torch.Tensor, generated: list[int], params: SamplingParams) -> torch.Tensor:
    """OpenAI's formula, one token at a time: the slow, obvious reference."""
    out = logits.clone()
    for token, count in Counter(generated).items():
        out[token] -= params.presence_penalty + params.frequency_penalty * count
    for token, bias in params.logit_bias:
        out[token] += bias
    return out


def greedy_reference(loaded, prompt: str, params: SamplingParams) -> list[int]:
    """Greedy decoding with a full forward per token on prompt + tokens so far."""
    tokenizer, model = loaded.tokenizer, loaded.model
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    generated: list[int] = []
    with torch.no_grad():
        for _ in range(params.max_tokens):
            logits = model(torch.tensor([ids + generated])).logits[0, -1].float()
            token = int(penalised(logits, generated, params).argmax())
            if token in (tokenizer.eos_token_id, tokenizer.pad_token_id):
                break
            generated.append(token)
    return generated


def test_the_processor_matches_the_formula_per_row_over_generated_tokens_only():
    """Rows of different histories, called step by step as `generate` calls it; the prompt never counts."""
    torch.manual_seed(0)
    params = SamplingParams(presence_penalty=0.5, frequency_penalty=-0.3, logit_bias=((2, 7.0), (9, -4.5)))
    prompt = torch.randint(0, 12, (3, 5))
    processor = PenaltyProcessor(params, prompt_width=5)
    ids = prompt
    for _ in range(6):
        scores = torch.randn(3, 12)
        got = processor(ids, scores.clone())
        for row in range(3):
            want = penalised(scores[row], ids[row, 5:].tolist(), params)
            torch.testing.assert_close(got[row], want)
        ids = torch.cat([ids, torch.randint(0, 12, (3, 1))], dim=1)


def test_greedy_generation_with_penalties_and_bias_matches_the_reference(engine, scorer_model):
    params = SamplingParams(
        max_tokens=12, temperature=0, presence_penalty=0.8, frequency_penalty=0.6, logit_bias=((40, 1.5), (41, -3.0))
    )
    want = greedy_reference(scorer_model, PROMPT, params)
    got = engine.generate(encode_text(engine.loaded.tokenizer, PROMPT), params).generations[0]
    assert got.n_tokens == len(want)
    assert got.text == scorer_model.tokenizer.decode(want, skip_special_tokens=True)
    plain = engine.generate(
        encode_text(engine.loaded.tokenizer, PROMPT), SamplingParams(max_tokens=12, temperature=0)
    ).generations[0]
    assert plain.text == scorer_model.tokenizer.decode(
        greedy_reference(scorer_model, PROMPT, SamplingParams(max_tokens=12, temperature=0)), skip_special_tokens=True
    )
    assert plain.text != got.text  # the penalties changed what was generated


def test_a_large_bias_makes_greedy_output_that_token(engine, scorer_model):
    token = scorer_model.tokenizer.convert_tokens_to_ids("7")
    got = engine.generate(
        encode_text(engine.loaded.tokenizer, PROMPT),
        SamplingParams(max_tokens=5, temperature=0, logit_bias=((token, 100.0),)),
    )
    assert got.generations[0].text == "77777" and got.generations[0].n_tokens == 5


def test_the_bias_is_applied_before_top_p(engine, scorer_model):
    """The least likely first token, outside any small nucleus of the raw distribution, is sampled every time
    when biased: the bias reaches the logits before top-p cuts them (after, it could not bring it back)."""
    tokenizer = scorer_model.tokenizer
    ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = scorer_model.model(torch.tensor([ids])).logits[0, -1]
    unlikely = int(logits.argmin())
    params = SamplingParams(n=6, max_tokens=1, temperature=1.5, top_p=0.05, logit_bias=((unlikely, 100.0),))
    generations = engine.generate(encode_text(engine.loaded.tokenizer, PROMPT), params).generations
    assert [g.text for g in generations] == [tokenizer.decode([unlikely], skip_special_tokens=True)] * 6


def test_requests_with_different_penalties_never_share_a_batch(engine):
    """Sent together (one batch window), each comes back as it does alone."""
    biased = SamplingParams(max_tokens=6, temperature=0, logit_bias=((40, 100.0),))
    plain = SamplingParams(max_tokens=6, temperature=0)
    assert biased.batch_key() != plain.batch_key()
    alone = [
        engine.generate(encode_text(engine.loaded.tokenizer, PROMPT), p).generations[0].text for p in (biased, plain)
    ]
    results: list[str] = ["", ""]

    def run(i: int, params: SamplingParams) -> None:
        results[i] = engine.generate(encode_text(engine.loaded.tokenizer, PROMPT), params).generations[0].text

    threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate((biased, plain))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == alone and alone[0] != alone[1]


def test_a_bias_outside_the_vocabulary_is_the_callers_error(engine, scorer_model):
    vocabulary = len(scorer_model.tokenizer)
    with pytest.raises(InvalidRequest, match="outside the vocabulary") as error:
        engine.generate(
            encode_text(engine.loaded.tokenizer, PROMPT), SamplingParams(max_tokens=2, logit_bias=((vocabulary, 1.0),))
        )
    assert error.value.param == "logit_bias"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"presence_penalty": 2.01}, "presence_penalty"),
        ({"frequency_penalty": -2.5}, "frequency_penalty"),
        ({"frequency_penalty": float("nan")}, "frequency_penalty"),
        ({"logit_bias": ((1, 100.5),)}, "logit_bias"),
        ({"logit_bias": ((-1, 1.0),)}, "logit_bias"),
        ({"logit_bias": ((3, 1.0), (3, 2.0))}, "logit_bias"),
        ({"logit_bias": tuple((i, 1.0) for i in range(301))}, "logit_bias"),
    ],
)
def test_out_of_range_values_are_refused_by_name(fields, param):
    with pytest.raises(InvalidRequest) as error:
        SamplingParams(**fields)
    assert error.value.param == param


def test_openais_bounds_themselves_are_allowed():
    bounds = SamplingParams(presence_penalty=-2, frequency_penalty=2, logit_bias=tuple((i, -100.0) for i in range(300)))
    assert bounds.shapes_logits and not SamplingParams().shapes_logits
