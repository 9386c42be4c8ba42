"""The trainer's packed group forward (prompt once, completions side by side under a 4-D mask) against
the obviously right reference: one padded row per completion, prompt repeated. Values and gradients."""

from __future__ import annotations

from typing import Any

import torch

from l2t_core.train.trainer import sequence_logprobs


def padded_rows_logprobs(model: Any, prompt_ids: list[int], completions: list[list[int]]) -> list[torch.Tensor]:
    rows = [prompt_ids + c for c in completions]
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    n = len(prompt_ids)
    return [
        torch.log_softmax(logits[i, n - 1 : n - 1 + len(c)], dim=-1).gather(1, torch.tensor(c)[:, None])[:, 0]
        for i, c in enumerate(completions)
    ]


def _grads(model: Any, total: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    total.backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def test_packed_group_forward_equals_one_row_per_completion(loaded_model: Any) -> None:
    model, tokenizer = loaded_model.model, loaded_model.tokenizer
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = encode("Question: what is 17 + 25? Think in episodes.\n<episode_1>")
    completions = [
        encode(" 17 + 25 = 42.</episode_1>\n\\boxed{42}"),
        encode(" 17 plus 20 is 37, plus 5 is 42.</episode_1>"),
        [],  # an empty rollout contributes nothing and must not break the row
        encode(" 43"),
    ]
    weights = [torch.linspace(0.5, 1.5, len(c)) for c in completions]
    frozen = {name: not p.requires_grad for name, p in model.named_parameters()}
    model.requires_grad_(True)  # the shared fixture is loaded for inference
    try:
        packed = sequence_logprobs(model, prompt, completions, torch.device("cpu"))
        reference = padded_rows_logprobs(model, prompt, [c for c in completions if c])
        nonempty = [p for p, c in zip(packed, completions, strict=True) if c]
        assert packed[2].numel() == 0
        for got, want in zip(nonempty, reference, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)
        packed_grads = _grads(model, sum((w * p).sum() for w, p in zip(weights, packed, strict=True)))
        kept_weights = [w for w, c in zip(weights, completions, strict=True) if c]
        reference_grads = _grads(model, sum((w * p).sum() for w, p in zip(kept_weights, reference, strict=True)))
    finally:
        model.zero_grad(set_to_none=True)
        for name, p in model.named_parameters():
            p.requires_grad_(not frozen[name])
    assert packed_grads.keys() == reference_grads.keys() and packed_grads
    # float32 sums in a different order: compare each gradient tensor by its norm (elementwise rtol is
    # meaningless on entries that are ~0); a wrong mask or position is off by O(1) here
    for name, grad in packed_grads.items():
        want = reference_grads[name]
        relative = float((grad - want).norm() / want.norm().clamp_min(1e-12))
        assert relative <= 1e-4, f"{name}: relative gradient error {relative:.2e}"
