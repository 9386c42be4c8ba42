"""The L2T reward inside TRL: the reward function agrees with the scorer; it scores TRL's completion ids
after the prompt ids TRL built (chat template kwargs included); a schedule moves β with the trainer's
state; its loggers get per-episode values; and real GRPOTrainer runs on the CPU (the tiny random model,
and the embedded SmolLM2) train with it."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from l2t_core.answers import answers_match
from l2t_core.episodes import prompt_format, render_prompt
from l2t_core.integrations.schedule import Ramp
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
    assert logged["l2t/beta"] == 0.6 and logged["l2t/alpha"] == 0.5
    assert reward([render_prompt(loaded_model.tokenizer, prompt)], completions[:1], answer=["7"]) == pytest.approx(
        expected[:1]
    )  # plain-text prompts and completions too
    with pytest.raises(ValueError, match="answer"):
        reward([prompt], completions[:1])


def tiny_grpo_run(output_dir: Any, **config: Any) -> tuple[Any, Any]:
    """Two addition questions as chat prompts (no system prompt: cheap) and a GRPOConfig for a CPU run of
    2 prompts × 2 generations of 8 tokens; `config` sets the rest (steps, learning rate, logging)."""
    rows = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in [(3, 4), (12, 5)]]
    dataset = datasets.Dataset.from_list(rows).map(
        lambda row: {"prompt": prompt_format("plain").messages(row["question"])}
    )
    args = trl.GRPOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=8,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,  # TRL turns it on by default; it only costs time at this size
        seed=0,
        **config,
    )
    return dataset, args


@pytest.mark.slow  # ~40-130 s: kept out of the default suite to hold CI under 15 min; `pytest -m slow` runs it
def test_a_tiny_grpo_trainer_run_trains_on_the_l2t_reward(tmp_path):
    policy = load_model("default", device="cpu", dtype="float32")
    policy.model.requires_grad_(True)  # load_model hands out a frozen (inference) model
    before = policy.model.model.norm.weight.detach().clone()
    reward = L2TReward(policy.model, policy.tokenizer)
    dataset, args = tiny_grpo_run(tmp_path, max_steps=1, learning_rate=1e-4)
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


QUESTION = "What is 3 + 4?"
TAGGED = [
    "<episode_1>3 + 4 = 7</episode_1>\nThe final answer is \\boxed{7}.",
    "<episode_1>3 plus 4</episode_1>\n<episode_2>is 8</episode_2>\nThe final answer is \\boxed{8}.",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), device="cpu")


def trl_prompt_ids(tokenizer, prompt, **chat_template_kwargs):
    """The prompt ids exactly as TRL 1.16's GRPOTrainer._tokenize_prompts builds them."""
    if isinstance(prompt, str):
        return list(tokenizer(text=[prompt])["input_ids"][0])
    tokenized = tokenizer.apply_chat_template(
        conversation=[prompt], add_generation_prompt=True, tokenize=True, return_dict=True, **chat_template_kwargs
    )
    return list(tokenized["input_ids"][0])


def test_completion_ids_give_the_text_paths_rewards_when_they_are_the_texts_tokenization(tiny):
    reward = L2TReward(tiny.model, tiny.tokenizer, alpha=0.5, beta=0.6)
    prompt = prompt_format("plain").messages(QUESTION)
    ids = [tiny.tokenizer(c, add_special_tokens=False)["input_ids"] for c in TAGGED]
    chat = [[{"role": "assistant", "content": c}] for c in TAGGED]
    by_text = reward([prompt, prompt], chat, answer=["7", "7"])
    by_ids = reward([prompt, prompt], chat, completion_ids=ids, answer=["7", "7"])
    assert by_ids == pytest.approx(by_text, rel=1e-5, abs=1e-9)
    assert by_text[0] != by_text[1]  # a non-trivial comparison: the two completions score apart
    # the ids are what is scored: other ids than the text's give another reward
    other = [ids[0][:-3], ids[1]]
    assert reward([prompt, prompt], chat, completion_ids=other, answer=["7", "7"])[0] != pytest.approx(by_text[0])


def test_prompt_ids_are_the_ones_trl_built_chat_template_kwargs_included(tiny):
    tokenizer = tiny.tokenizer
    prompt = prompt_format("plain").messages(QUESTION)
    plain = L2TReward(tiny.model, tokenizer)
    assert list(plain.prompt(prompt).ids or ()) == trl_prompt_ids(tokenizer, prompt)
    text = plain.prompt(prompt).text
    assert list(plain.prompt(text).ids or ()) == trl_prompt_ids(tokenizer, text)  # a standard (text) prompt
    # a template that reads a kwarg (as Qwen3's reads enable_thinking): the reward must render what TRL did
    templated = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    templated.chat_template = "{% if think %}<|system|>\nthink<|end|>\n{% endif %}" + tokenizer.chat_template
    thinking = L2TReward(tiny.model, templated, chat_template_kwargs={"think": True})
    assert list(thinking.prompt(prompt).ids or ()) == trl_prompt_ids(templated, prompt, think=True)
    assert thinking.prompt(prompt).ids != plain.prompt(prompt).ids


def test_a_ramp_on_beta_follows_the_trainer_state(tiny):
    transformers = pytest.importorskip("transformers")
    # 'step' mode: before any training the policy has not drifted, so 'drift' mode's C_k would be 0
    reward = L2TReward(tiny.model, tiny.tokenizer, alpha=1.0, beta=Ramp(start=0.0, end=2.0), delta_mode="step")
    prompt = prompt_format("plain").messages(QUESTION)
    state = transformers.TrainerState(global_step=0, max_steps=10)
    logged: dict[str, float] = {}
    call = {"answer": ["7"], "trainer_state": state, "log_metric": logged.__setitem__}
    at_start = reward([prompt], TAGGED[1:], **call)
    assert logged["l2t/beta"] == 0.0
    state.global_step = 5
    halfway = reward([prompt], TAGGED[1:], **call)
    assert logged["l2t/beta"] == pytest.approx(1.0)
    # r = r_out + α Σ (ΔI_k − β C_k): with the same ΔI_k and C_k, β = 1 costs exactly Σ C_k
    (score,) = reward.scorer.score(reward.prompt(prompt).text, TAGGED[1:], reference="7")
    penalty = sum(e.compression_penalty for e in score.episodes)
    assert penalty > 0
    assert at_start[0] - halfway[0] == pytest.approx(penalty, rel=1e-4)
    assert Ramp(0.0, 2.0, begin=0.5)(0.25) == 0.0 and Ramp(0.0, 2.0, begin=0.5)(0.75) == 1.0
    with pytest.raises(ValueError, match="begin < finish"):
        Ramp(0.0, 1.0, begin=0.8, finish=0.2)


def test_log_extra_and_log_metric_get_per_episode_values(tiny):
    reward = L2TReward(tiny.model, tiny.tokenizer)
    prompt = prompt_format("plain").messages(QUESTION)
    columns: dict[str, list] = {}
    metrics: dict[str, float] = {}
    reward(
        [prompt, prompt],
        TAGGED,
        answer=["7", "7"],
        log_extra=columns.__setitem__,
        log_metric=metrics.__setitem__,
    )
    scores = reward.scorer.score(reward.prompt(prompt).text, TAGGED, reference="7")
    assert columns["l2t/episodes"] == [1, 2]
    assert columns["l2t/delta_i"] == [[pytest.approx(e.fitting_gain, rel=1e-3) for e in s.episodes] for s in scores]
    assert [len(c) for c in columns["l2t/compression"]] == [1, 2]
    assert columns["l2t/outcome"] == [1.0, 0.0]
    gains = [e.fitting_gain for s in scores for e in s.episodes]
    assert metrics["l2t/episodes"] == 1.5
    assert metrics["l2t/delta_i"] == pytest.approx(sum(gains) / 3)
    assert {"l2t/outcome", "l2t/dense", "l2t/compression", "l2t/alpha", "l2t/beta"} <= set(metrics)


def test_a_grpo_trainer_run_on_the_tiny_model_passes_ids_state_and_loggers(tiny_model_dir, tmp_path):
    policy = load_model(str(tiny_model_dir), device="cpu")
    policy.model.requires_grad_(True)
    seen: dict[str, object] = {}

    class Watched(L2TReward):
        def __call__(self, prompts, completions, **kwargs):  # what TRL passed, then the real reward
            seen.update(kwargs)
            return super().__call__(prompts, completions, **kwargs)

    reward = Watched(policy.model, policy.tokenizer, beta=Ramp(0.0, 0.6), chat_template_kwargs={})
    dataset, args = tiny_grpo_run(tmp_path, max_steps=2, log_completions=True)
    trainer = trl.GRPOTrainer(
        model=policy.model, processing_class=policy.tokenizer, reward_funcs=reward, args=args, train_dataset=dataset
    )
    trainer.train()
    assert isinstance(seen["completion_ids"], list) and all(isinstance(t, int) for t in seen["completion_ids"][0])
    assert seen["trainer_state"] is trainer.state
    logs = [entry for entry in trainer.state.log_history if "rewards/l2t/mean" in entry]
    assert len(logs) == 2
    assert [e["l2t/beta"] for e in logs] == pytest.approx([0.0, 0.3])  # the ramp read at steps 0 and 1 of 2
    assert all("l2t/episodes" in e for e in logs)
    assert {"l2t/episodes", "l2t/delta_i", "l2t/compression", "l2t/outcome"} <= set(trainer._logs["extra"])
