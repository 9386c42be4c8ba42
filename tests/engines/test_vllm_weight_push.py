"""vLLM rollouts for the trainer: after `push_weights`, what vLLM samples has the policy's log-probabilities
(float32 vLLM against the float32 torch policy), and a real training step with `engine: vllm` leaves the
engine on the updated policy. Needs vllm (CI's vLLM stage)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from l2t_core.engines import SamplingParams
from l2t_core.engines.vllm_engine import vllm_available
from l2t_core.episodes import prompt_format
from l2t_core.train.trainer import sequence_logprobs

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not vllm_available(), reason="vllm is not installed"),
]

MATCH = 1e-3  # float32 on both sides: measured ≤ 3e-5
PROMPT_QUESTION = "What is 12 + 7?"


def largest_gap(engine: Any, policy: Any, tokenizer: Any, temperature: float) -> float:
    """Sample from the engine; the largest |vLLM log p − policy log p| over the sampled tokens."""
    prompt = prompt_format("worked").render(tokenizer, PROMPT_QUESTION)
    prompt_ids = list(prompt.engine_ids)
    batch = engine.generate(prompt_ids, SamplingParams(n=2, max_tokens=12, temperature=temperature))
    gaps = []
    for generation in batch.generations:
        assert len(generation.token_ids) == len(generation.token_logprobs) == generation.n_tokens > 0
        with torch.no_grad():
            ours = sequence_logprobs(policy, prompt_ids, [list(generation.token_ids)], torch.device("cpu"))[0]
        gaps.append(float((ours - torch.tensor(generation.token_logprobs)).abs().max()))
    return max(gaps)


def test_pushed_weights_are_what_vllm_samples_from(loaded_model: Any, vllm_cpu_env: None) -> None:
    from l2t_core.engines.vllm_engine import VLLMEngine

    policy = copy.deepcopy(loaded_model.model)
    engine = VLLMEngine(loaded_model.path, "default", dtype="float32", gpu_memory_utilization=0.3, max_model_len=2048)
    try:
        assert largest_gap(engine, policy, loaded_model.tokenizer, 1.0) <= MATCH  # same starting weights
        torch.manual_seed(0)
        with torch.no_grad():  # a policy that has moved, every weight (the tied embeddings/lm_head included)
            for weight in policy.parameters():
                weight.add_(0.01 * torch.randn_like(weight))
        assert largest_gap(engine, policy, loaded_model.tokenizer, 1.0) > 0.05  # vLLM still has the old weights
        seconds = engine.push_weights(policy)
        assert seconds > 0
        # after the push they agree; at temperature 0.7 too (vLLM reports raw log-probs, before temperature)
        assert largest_gap(engine, policy, loaded_model.tokenizer, 0.7) <= MATCH
        assert engine.healthy()
    finally:
        engine.close()


def test_training_step_with_vllm_rollouts(tmp_path: Path, vllm_cpu_env: None) -> None:
    from l2t_core.train.trainer import Trainer
    from tests.train.test_training_run import config as tiny_config

    data = tmp_path / "add.jsonl"
    rows = [{"id": f"a{i}", "question": f"What is {i} + {i + 3}?", "answer": str(2 * i + 3)} for i in range(8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tiny_config(data, tmp_path / "run", "default", steps=1, max_new_tokens=16, eval_size=0, engine="vllm")
    trainer = Trainer(config)
    try:
        # no max_model_len given: vLLM runs the model's own context (SmolLM2's 8192), and says so
        context = trainer.accelerator.unwrap_model(trainer.model).config.max_position_embeddings
        assert trainer.rollout_engine.max_model_len == context == 8192
        trainer.run()
        (record,) = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        assert record["rollout_s"] > 0 and record["sync_s"] > 0
        # the engine now samples from the stepped policy, not the initial weights
        policy = trainer.accelerator.unwrap_model(trainer.model)
        assert largest_gap(trainer.rollout_engine, policy, trainer.tokenizer, 1.0) <= MATCH
    finally:
        trainer.close()
