"""OpenAI's presence and frequency penalties and logit bias on the raw logits, for engines that sample
with transformers (vLLM and a remote OpenAI server apply their own).

OpenAI's formula, per candidate and step, over the tokens that candidate has generated so far (the
prompt does not count, as in OpenAI and vLLM):

    logit[j] -= presence_penalty · [count[j] > 0] + frequency_penalty · count[j]
    logit[j] += logit_bias[j]

It runs on the logits as the model gives them, before temperature and top-p: transformers' `generate`
applies the processors it is handed before its sampling warpers.
"""

from __future__ import annotations

import torch

from l2t_core.engines.base import SamplingParams


class PenaltyProcessor:
    """A transformers logits processor for one batch of rows that share their `SamplingParams`.

    `prompt_width` is the (left-padded) prompt's width: the ids after it are the generated ones. The
    token counts are kept between steps (rows × vocabulary), each step adding the tokens it had not seen.
    """

    def __init__(self, params: SamplingParams, prompt_width: int) -> None:
        self.presence = params.presence_penalty
        self.frequency = params.frequency_penalty
        self.logit_bias = params.logit_bias
        self.prompt_width = prompt_width
        self._seen = prompt_width  # ids of input_ids already counted
        # (counts: (rows, vocabulary), times each token was generated; bias: (vocabulary,)), from the first step
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids: (rows, prompt_width + generated), scores: (rows, vocabulary) raw logits."""
        counts, bias = self._state = self._state or self._start(scores)
        new = input_ids[:, self._seen :]
        if new.shape[1]:
            counts.scatter_add_(1, new, torch.ones_like(new, dtype=scores.dtype))
            self._seen = input_ids.shape[1]
        return scores - self.presence * (counts > 0).to(scores.dtype) - self.frequency * counts + bias

    def _start(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bias = torch.zeros(scores.shape[-1], dtype=scores.dtype, device=scores.device)
        if self.logit_bias:
            tokens = torch.tensor([token for token, _ in self.logit_bias], device=scores.device)
            bias[tokens] = torch.tensor([b for _, b in self.logit_bias], dtype=scores.dtype, device=scores.device)
        return torch.zeros_like(scores), bias
