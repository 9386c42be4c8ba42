"""The L2T reward as a verl custom reward function: `compute_score` (sync, for verl's reward managers)
and `compute_score_async` (for the asynchronous reward loop), both in verl's convention
`compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)`.

    custom_reward_function.path=pkg://l2t_core.integrations.verl
    custom_reward_function.name=compute_score            # or compute_score_async
    +custom_reward_function.reward_kwargs.model=default  # or L2T_VERL_MODEL; a folder or a cached HF id

verl hands a reward function the decoded response and the row's `extra_info`, not the prompt: put the
prompt the policy saw in `extra_info["prompt"]` (its chat messages, or the rendered text), or at least the
question in `extra_info["question"]` (verl's own gsm8k preprocessing writes it), which is then rendered in
the `prompt_format` keyword's format. J is measured against `ground_truth`.

The scorer is a separate, frozen model (verl's policy lives in its own workers), so Δθ̃ is the virtual
step ('step' mode, as `/score` uses). It is loaded once per process, on first use, and kept per (model,
device); concurrent calls (the reward loop runs sync functions in threads) go through one `ScoringQueue`,
which measures the jobs that arrive together in one forward. The returned dict has "score" (what verl
trains on) and the L2T components, which verl logs as extra reward info: one scalar each, the same keys
for every sample, as verl's managers need to stack them.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Mapping
from typing import Any

from l2t_core.answers import answers_match
from l2t_core.episodes import prompt_format as find_prompt_format
from l2t_core.episodes import render_prompt
from l2t_core.errors import InvalidRequest
from l2t_core.reward import RewardConfig
from l2t_core.scoring import L2TScorer, ScoringJob
from l2t_core.scoring.micro_batch import ScoringQueue

MODEL_ENV = "L2T_VERL_MODEL"
DEVICE_ENV = "L2T_VERL_DEVICE"
DEFAULT_FORMAT = "plain"  # a question alone, as the user turn: what verl's preprocessing scripts write

_queues: dict[tuple[str, str], ScoringQueue] = {}
_queues_lock = threading.Lock()


def scoring_queue(model: str | None = None, device: str | None = None) -> ScoringQueue:
    """The process's scorer for `model` on `device` (from the arguments, else $L2T_VERL_MODEL and
    $L2T_VERL_DEVICE, else the default model on the best device), built on first use."""
    from l2t_core.models import load_model

    key = (model or os.environ.get(MODEL_ENV) or "default", device or os.environ.get(DEVICE_ENV) or "auto")
    with _queues_lock:
        if key not in _queues:
            loaded = load_model(key[0], device=key[1], dtype="float32")
            config = RewardConfig(delta_mode="step", target="reference")
            _queues[key] = ScoringQueue(L2TScorer(loaded.model, loaded.tokenizer, config))
        return _queues[key]


@atexit.register
def _close_queues() -> None:
    """Stop the queues' worker threads before the interpreter tears torch down under them."""
    with _queues_lock:
        for queue in _queues.values():
            queue.close()
        _queues.clear()


def prompt_text(tokenizer: Any, extra_info: Mapping[str, Any] | None, prompt_format: str) -> str:
    """The prompt the response continues: `extra_info["prompt"]` (messages or text) or the question."""
    info = extra_info or {}
    prompt = info.get("prompt")
    if isinstance(prompt, str) and prompt:
        return prompt
    if prompt is not None and not isinstance(prompt, str):
        return render_prompt(tokenizer, [dict(message) for message in prompt])
    question = info.get("question")
    if not question:
        raise InvalidRequest(
            "the L2T reward needs the prompt: put the chat messages (or the rendered text) in "
            "extra_info['prompt'], or the question in extra_info['question']",
            param="extra_info",
        )
    return find_prompt_format(prompt_format).render(tokenizer, str(question)).text


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    model: str | None = None,
    device: str | None = None,
    alpha: float = RewardConfig.alpha,
    beta: float = RewardConfig.beta,
    prompt_format: str = DEFAULT_FORMAT,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's reward for one response: score = r_out + α Σ_k r_k, with r_out (1 when the response's answer
    matches `ground_truth`), Σ r_k, K, Σ ΔI_k and Σ C_k beside it. `model`, `device`, `alpha`, `beta` and
    `prompt_format` come from `custom_reward_function.reward_kwargs`; verl's other keywords (such as
    the reward loop's `reward_router_address`) are accepted and unused."""
    queue = scoring_queue(model, device)
    reference = str(ground_truth)
    config = queue.scorer.config.with_overrides(beta=beta)
    prompt = prompt_text(queue.scorer.tokenizer, extra_info, prompt_format)
    (score,) = queue.score(ScoringJob(prompt, [solution_str], reference, config))
    outcome = 1.0 if answers_match(score.answer, reference) else 0.0
    dense = sum(e.measured_reward for e in score.episodes)
    return {
        "score": outcome + alpha * dense,
        "outcome": outcome,
        "dense": dense,
        "episodes": float(len(score.episodes)),
        "delta_i": sum(e.fitting_gain for e in score.episodes),
        "compression": sum(e.measured_penalty for e in score.episodes),
    }


async def compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """`compute_score` for verl's reward loop, which awaits coroutine functions: the scoring runs in a
    thread, so the loop keeps serving other samples, and samples scored together share a forward."""
    return await asyncio.to_thread(compute_score, data_source, solution_str, ground_truth, extra_info, **kwargs)
