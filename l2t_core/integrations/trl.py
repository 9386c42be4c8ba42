"""The L2T reward as a TRL `GRPOTrainer` reward function: one number per completion,
r_out + α Σ_k r_k, from the same `L2TScorer` that `/score` and `python -m l2t_core.train` use.

TRL's GRPO gives every token of a completion the same advantage (the group z-score of the sequence
reward). So TRL users get the dense reward's *ranking* signal inside a group (a wrong answer whose
episodes gained information beats one whose did not; with β, compact episodes beat bloated ones), but
not Algorithm 1's credit assignment, which spreads each episode's reward over that episode's tokens.
docs/training.md ("L2T in TRL") says what that costs.

    policy = load_model("default", device="cpu", dtype="float32")
    policy.model.requires_grad_(True)  # load_model returns a frozen model for inference
    reward = L2TReward(policy.model, policy.tokenizer, alpha=0.8, beta=0.6)
    fmt = prompt_format("episode")  # any served format's messages (its prefill is not applied by TRL)
    dataset = dataset.map(lambda row: {"prompt": fmt.messages(row["question"])})  # keeps "answer"
    GRPOTrainer(model=policy.model, processing_class=policy.tokenizer, reward_funcs=reward,
                args=GRPOConfig(...), train_dataset=dataset).train()

Pass the policy itself (the object GRPOTrainer trains): ΔI_k is measured with the current policy, as the
paper does, and in the default 'drift' mode Δθ̃ is the policy's drift from the weights it had when the
reward was built. This module needs only `l2t_core`; TRL calls it, it never imports TRL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from l2t_core.answers import answers_match
from l2t_core.episodes import render_prompt
from l2t_core.reward import RewardConfig
from l2t_core.scoring import L2TScorer


class L2TReward:
    """A TRL reward function (`reward_funcs=L2TReward(...)`): r_out + α Σ_k r_k for each completion."""

    __name__ = "l2t"  # TRL logs the reward as rewards/<name>/mean

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        alpha: float = RewardConfig.alpha,
        beta: float = RewardConfig.beta,
        delta_mode: str = "drift",
        answer_column: str = "answer",
        suffix_probability: str = RewardConfig.suffix_probability,
    ) -> None:
        """Build the scorer now: in 'drift' mode the policy's weights at this moment are W_ref."""
        self.alpha = alpha
        self.answer_column = answer_column
        self.tokenizer = tokenizer
        config = RewardConfig(
            alpha=alpha, beta=beta, delta_mode=delta_mode, target="reference", suffix_probability=suffix_probability
        )
        self.scorer = L2TScorer(model, tokenizer, config)

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        """TRL's call: the batch's prompts and completions (plain text, or chat messages) and the dataset's
        other columns, among them the reference answers."""
        if self.answer_column not in columns:
            raise ValueError(f"L2TReward needs the dataset column {self.answer_column!r} with reference answers")
        answers = [str(a) for a in columns[self.answer_column]]
        texts = [self._prompt_text(p) for p in prompts]
        completion_texts = [self._completion_text(c) for c in completions]
        groups: dict[tuple[str, str], list[int]] = {}  # TRL repeats each prompt once per generation
        for i, key in enumerate(zip(texts, answers, strict=True)):
            groups.setdefault(key, []).append(i)
        rewards = [0.0] * len(prompts)
        outcomes, dense = [0.0] * len(prompts), [0.0] * len(prompts)
        for (prompt, answer), indices in groups.items():
            scores = self.scorer.score(prompt, [completion_texts[i] for i in indices], reference=answer)
            for i, score in zip(indices, scores, strict=True):
                outcomes[i] = 1.0 if answers_match(score.answer, answer) else 0.0
                dense[i] = sum(e.reward for e in score.episodes)
                rewards[i] = outcomes[i] + self.alpha * dense[i]
        log_metric: Callable[[str, float], None] | None = columns.get("log_metric")
        if log_metric is not None and rewards:
            log_metric("l2t/outcome", sum(outcomes) / len(outcomes))
            log_metric("l2t/dense", sum(dense) / len(dense))
        return rewards

    def _prompt_text(self, prompt: Any) -> str:
        """The rendered prompt the completion continues (chat prompts through the same chat template)."""
        return prompt if isinstance(prompt, str) else render_prompt(self.tokenizer, list(prompt))

    @staticmethod
    def _completion_text(completion: Any) -> str:
        if isinstance(completion, str):
            return completion
        return "".join(str(message.get("content", "")) for message in completion)
