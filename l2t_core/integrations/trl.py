"""The L2T reward as a TRL `GRPOTrainer` reward function: one number per completion,
r_out + α Σ_k r_k, from the same `L2TScorer` that `/score` and `python -m l2t_core.train` use.

TRL's GRPO gives every token of a completion the same advantage (the group z-score of the sequence
reward). So TRL users get the dense reward's *ranking* signal inside a group (a wrong answer whose
episodes gained information beats one whose did not; with β, compact episodes beat bloated ones), but
not Algorithm 1's credit assignment, which spreads each episode's reward over that episode's tokens.
docs/training.md ("L2T in TRL") says what that costs.

    policy = load_model("default", device="cpu", dtype="float32")
    policy.model.requires_grad_(True)  # load_model returns a frozen model for inference
    args = GRPOConfig(..., chat_template_kwargs={...})
    reward = L2TReward(policy.model, policy.tokenizer, alpha=0.8, beta=Ramp(0.0, 0.6),
                       chat_template_kwargs=args.chat_template_kwargs)
    fmt = prompt_format("episode")  # any served format's messages (its prefill is not applied by TRL)
    dataset = dataset.map(lambda row: {"prompt": fmt.messages(row["question"])})  # keeps "answer"
    GRPOTrainer(model=policy.model, processing_class=policy.tokenizer, reward_funcs=reward,
                args=args, train_dataset=dataset).train()

What TRL (1.16) hands a reward function, and what this one does with it:
- `completion_ids`: each completion's sampled ids (EOS included). They are scored as they are, after the
  prompt's ids, so the scorer runs the sequence the policy generated; the text is decoded from them.
- the prompt's ids are not passed: they are rebuilt as TRL built them, a conversational prompt through the
  chat template with `add_generation_prompt=True` and `GRPOConfig.chat_template_kwargs` (TRL keeps those
  to itself, so pass them here), then tokenized without special tokens; a plain-text prompt with the
  tokenizer's defaults, as TRL's `processing_class(text=prompts)` does.
- `trainer_state`: its global_step / max_steps is the progress α and β are read at (`schedule.Ramp`).
- `log_extra` / `log_metric`: per-completion columns for TRL's completions table (K, ΔI_k and C_k per
  episode, r_out) and batch means (`l2t/...`).

Pass the policy itself (the object GRPOTrainer trains): ΔI_k is measured with the current policy, as the
paper does, and in the default 'drift' mode Δθ̃ is the policy's drift from the weights it had when the
reward was built. This module needs only `l2t_core`; TRL calls it, it never imports TRL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from l2t_core.answers import answers_match
from l2t_core.engines.detokenize import IncrementalDetokenizer
from l2t_core.episodes import render_prompt
from l2t_core.integrations.schedule import Coefficient, training_progress, value_at
from l2t_core.reward import RewardConfig
from l2t_core.scoring import CandidateScore, L2TScorer, ScoringJob
from l2t_core.tokens import encode_text

LogExtra = Callable[[str, list[Any]], None]
LogMetric = Callable[[str, float], None]


@dataclass(frozen=True)
class _Prompt:
    """A batch prompt as the scorer takes it: the rendered text and, on the ids path, TRL's prompt ids."""

    text: str
    ids: tuple[int, ...] | None


class L2TReward:
    """A TRL reward function (`reward_funcs=L2TReward(...)`): r_out + α Σ_k r_k for each completion."""

    __name__ = "l2t"  # TRL logs the reward as rewards/<name>/mean

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        alpha: Coefficient = RewardConfig.alpha,
        beta: Coefficient = RewardConfig.beta,
        delta_mode: str = "drift",
        answer_column: str = "answer",
        suffix_probability: str = RewardConfig.suffix_probability,
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        """Build the scorer now: in 'drift' mode the policy's weights at this moment are W_ref. `alpha` and
        `beta` are numbers or schedules of training progress (`schedule.Ramp`); `chat_template_kwargs`
        must be the trainer's (`GRPOConfig.chat_template_kwargs`) so prompts render as TRL rendered them."""
        self.alpha = alpha
        self.beta = beta
        self.answer_column = answer_column
        self.tokenizer = tokenizer
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        config = RewardConfig(
            alpha=value_at(alpha, 0.0),
            beta=value_at(beta, 0.0),
            delta_mode=delta_mode,
            target="reference",
            suffix_probability=suffix_probability,
        )
        self.scorer = L2TScorer(model, tokenizer, config)

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        trainer_state: Any | None = None,
        log_extra: LogExtra | None = None,
        log_metric: LogMetric | None = None,
        **columns: Any,
    ) -> list[float]:
        """TRL's call: the batch's prompts and completions (plain text, or chat messages), the sampled ids,
        the trainer's state, its two loggers and the dataset's other columns (the reference answers).
        Without `completion_ids` (a caller other than TRL) the texts are tokenized by the scorer."""
        if self.answer_column not in columns:
            raise ValueError(f"L2TReward needs the dataset column {self.answer_column!r} with reference answers")
        if completion_ids is not None and len(completion_ids) != len(completions):
            raise ValueError(f"{len(completion_ids)} completion_ids for {len(completions)} completions")
        progress = training_progress(trainer_state)
        alpha, beta = value_at(self.alpha, progress), value_at(self.beta, progress)
        config = self.scorer.config.with_overrides(alpha=alpha, beta=beta)
        answers = [str(a) for a in columns[self.answer_column]]
        with_ids = completion_ids is not None
        rendered: dict[str, _Prompt] = {}
        keys = []
        for prompt in prompts:
            key = prompt if isinstance(prompt, str) else repr(prompt)
            if key not in rendered:
                rendered[key] = self.prompt(prompt, with_ids)
            keys.append(key)
        ids: list[tuple[int, ...]] | None = None
        if completion_ids is not None:
            ids = [tuple(int(t) for t in c) for c in completion_ids]
            texts = [decode_sampled(self.tokenizer, c) for c in ids]
        else:
            texts = [completion_text(c) for c in completions]
        groups: dict[tuple[str, str], list[int]] = {}  # TRL repeats each prompt once per generation
        for i, group in enumerate(zip(keys, answers, strict=True)):
            groups.setdefault(group, []).append(i)
        jobs = [
            ScoringJob(
                rendered[key].text,
                [texts[i] for i in indices],
                answer,
                config,
                prompt_ids=rendered[key].ids,
                completion_ids=[ids[i] for i in indices] if ids is not None else None,
            )
            for (key, answer), indices in groups.items()
        ]
        scores: list[CandidateScore | None] = [None] * len(prompts)
        for indices, job_scores in zip(groups.values(), self.scorer.score_many(jobs), strict=True):
            for i, score in zip(indices, job_scores, strict=True):
                scores[i] = score
        scored = [s for s in scores if s is not None]
        outcomes = [1.0 if answers_match(s.answer, a) else 0.0 for s, a in zip(scored, answers, strict=True)]
        dense = [sum(e.measured_reward for e in s.episodes) for s in scored]
        rewards = [o + alpha * d for o, d in zip(outcomes, dense, strict=True)]
        if log_extra is not None:
            log_per_completion(log_extra, scored, outcomes)
        if log_metric is not None and rewards:
            log_means(log_metric, scored, outcomes, dense, alpha, beta)
        return rewards

    def prompt(self, prompt: Any, with_ids: bool = True) -> _Prompt:
        """The prompt a completion continues: its text and (`with_ids`) the ids TRL generated after."""
        if isinstance(prompt, str):
            ids = tuple(int(t) for t in self.tokenizer(prompt)["input_ids"]) if with_ids else None
            return _Prompt(prompt, ids)
        messages = list(prompt)
        if getattr(self.tokenizer, "chat_template", None):
            text = str(
                self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
                )
            )
        else:  # no template: TRL could not have rendered it either; the library's plain transcript
            text = render_prompt(self.tokenizer, messages)
        return _Prompt(text, encode_text(self.tokenizer, text) if with_ids else None)


def decode_sampled(tokenizer: Any, ids: Sequence[int]) -> str:
    """The text sampled ids decode to, character for character as the scorer places episode tags on them
    (`plan.sampled_token_starts` walks the same detokenizer; special tokens such as the EOS give nothing)."""
    detokenizer = IncrementalDetokenizer(tokenizer)
    return "".join(detokenizer.push(int(token)) for token in ids)


def completion_text(completion: Any) -> str:
    """A completion's text: TRL passes plain text, or the assistant's messages for conversational prompts."""
    if isinstance(completion, str):
        return completion
    return "".join(str(message.get("content", "")) for message in completion)


def _short(value: float) -> float:
    return float(f"{value:.4g}")  # the completions table shows these; four digits read, sixteen do not


def log_per_completion(log_extra: LogExtra, scores: list[CandidateScore], outcomes: list[float]) -> None:
    """One value per completion, in batch order: TRL adds each as a column of its completions table."""
    log_extra("l2t/episodes", [len(s.episodes) for s in scores])
    log_extra("l2t/delta_i", [[_short(e.fitting_gain) for e in s.episodes] for s in scores])
    log_extra("l2t/compression", [[_short(e.measured_penalty) for e in s.episodes] for s in scores])
    log_extra("l2t/outcome", outcomes)


def log_means(
    log_metric: LogMetric,
    scores: list[CandidateScore],
    outcomes: list[float],
    dense: list[float],
    alpha: float,
    beta: float,
) -> None:
    """Batch means TRL averages over its logging steps: per completion (r_out, Σ r_k, K) and per episode."""
    log_metric("l2t/outcome", sum(outcomes) / len(outcomes))
    log_metric("l2t/dense", sum(dense) / len(dense))
    log_metric("l2t/episodes", sum(len(s.episodes) for s in scores) / len(scores))
    episodes = [e for s in scores for e in s.episodes]
    if episodes:
        log_metric("l2t/delta_i", sum(e.fitting_gain for e in episodes) / len(episodes))
        log_metric("l2t/compression", sum(e.measured_penalty for e in episodes) / len(episodes))
    log_metric("l2t/alpha", alpha)
    log_metric("l2t/beta", beta)
