"""The L2T reward inside TRL: the reward function agrees with the scorer, and a real GRPOTrainer run on
the CPU (the embedded SmolLM2, one step, 2 prompts × 2 generations of 8 tokens) trains with it."""

from __future__ import annotations

import pytest
import torch

from l2t_core.answers import answers_match
from l2t_core.episodes import prompt_format, render_prompt
from l2t_core.integrations.trl import L2TReward
from l2t_core.models import load_model

trl = pytest.importorskip("trl", reason="trl is not installed (pip install -e '.[trl]')")
datasets = pytest.importorskip("datasets", reason="datasets comes with trl")


def test_reward_is_outcome_plus_alpha_dense_from_the_scorer(loaded_model):
    reward = L2TReward(loaded_model.model, loaded_model.tokenizer, alpha=0.5, beta=0.6)
    prompt = prompt_format("episode").messages("What is 3 + 4?")
    completions = [
        "<episode_1>3 + 4 = 7</episode_1>\nThe final answer is \\boxed{7}.",
        "<episode_1>3 + 4 = 8</episode_1>\nThe final answer is \\boxed{8}.",
    ]
    logged: dict[str, float] = {}
    got = reward(
        [prompt, prompt],
        [[{"role": "assistant", "content": c}] for c in completions],  # TRL's chat form
        answer=["7", "7"],
        log_metric=logged.__setitem__,
    )
    scores = reward.scorer.score(render_prompt(loaded_model.tokenizer, prompt), completions, reference="7")
    expected = [float(answers_match(s.answer, "7")) + 0.5 * sum(e.reward for e in s.episodes) for s in scores]
    assert got == pytest.approx(expected)
    assert got[0] > 0.9 and got[1] < 0.1  # the correct answer carries r_out = 1
    assert logged["l2t/outcome"] == 0.5
    assert reward([render_prompt(loaded_model.tokenizer, prompt)], completions[:1], answer=["7"]) == pytest.approx(
        expected[:1]
    )  # plain-text prompts and completions too
    with pytest.raises(ValueError, match="answer"):
        reward([prompt], completions[:1])


@pytest.mark.slow  # ~40-130 s: kept out of the default suite to hold CI under 15 min; `pytest -m slow` runs it
def test_a_tiny_grpo_trainer_run_trains_on_the_l2t_reward(tmp_path):
    policy = load_model("default", device="cpu", dtype="float32")
    policy.model.requires_grad_(True)  # load_model hands out a frozen (inference) model
    before = policy.model.model.norm.weight.detach().clone()
    reward = L2TReward(policy.model, policy.tokenizer)
    rows = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in [(3, 4), (12, 5)]]
    dataset = datasets.Dataset.from_list(rows).map(
        lambda row: {"prompt": prompt_format("plain").messages(row["question"])}  # no system prompt: cheap
    )
    args = trl.GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=8,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,  # TRL turns it on by default; it only costs time at this size
        seed=0,
    )
    trainer = trl.GRPOTrainer(
        model=policy.model,
        processing_class=policy.tokenizer,
        reward_funcs=reward,
        args=args,
        train_dataset=dataset,
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "rewards/l2t/mean" in entry]
    assert len(logs) == 1 and all(torch.isfinite(torch.tensor(e["rewards/l2t/mean"])) for e in logs)
    assert all("l2t/dense" in e for e in logs)
    assert not torch.equal(before, policy.model.model.norm.weight.detach())  # GRPO moved the policy
    # the reward watched the policy being trained: its drift from the initial weights is no longer zero
    proxy = reward.scorer.proxy(reward.scorer.config.rank_ratio, keep_reference=True)
    assert float(proxy.drift(policy.model).abs().sum()) > 0
