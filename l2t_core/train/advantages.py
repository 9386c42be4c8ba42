"""Token advantages from episode rewards, exactly as the paper's Algorithm 1, made numerically safe.

For rollout i with episodes k = 1..K_i:
    R_{i,k} = r_out_i / K_i + α r_{i,k}                        episode reward
    r_{i,t} = R_{i,k} · w_t / Σ_{t'∈k} w_t',  w_t = −log p_old  spread over the episode by surprisal
    r̃_i    = TruncMean_95%({r_{i,t}})                          one scalar per rollout
    Â_i     = (r̃_i − mean_group r̃) / (std_group r̃ + ε)         GRPO group z-score
    A_{i,t} = Â_i · r_{i,t} / r̃_i                              back to tokens

Our decisions where the paper leaves room (docs/decisions.md):
- TruncMean_95% trims 2.5% of the token rewards from each tail (symmetric), at least keeping one.
- Tokens outside every episode (text before the first, the answer part after the last) are credited
  to the nearest episode, so the answer tokens that decide r_out get its reward too. A rollout with
  no episode at all is one episode.
- If an episode's surprisal weights sum to ~0 (every token certain) they are uniform instead.
- The division by r̃_i keeps its sign but its magnitude is floored at the mean |r_{i,t}|:
  A_{i,t} = Â_i · sign(r̃_i) · r_{i,t} / max(|r̃_i|, mean_t |r_{i,t}|), then clipped to ±`ratio_clip`·|Â_i|.
  When all token rewards share a sign this equals the paper's form; when they cancel (r̃_i ≈ 0) it
  cannot explode.
- A group whose r̃ are all equal (std = 0) gets Â = 0: no update, as in GRPO.
- C_k is put on the group's ΔI scale before β weighs it (`episode_rewards`, normalisation "group"):
  measured raw, C is ~1e-8 against ΔI ~1e-3, so β·C moved no advantage (β = 0 and β = 0.6 trained the
  same run). Scaled by s = mean_group |ΔI_k| / mean_group C_k, the group's mean penalty equals its mean
  |ΔI|, and the ratios between episodes (which C ranks) are kept: β = 0.6 then weighs 0.6 of an average
  information gain per average episode, whatever the model and the drift's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

Span = tuple[int, int]


@dataclass(frozen=True)
class RolloutRewards:
    outcome: float  # r_out ∈ {0, 1}
    episode_rewards: list[float]  # r_{i,k} = ΔI_k − β C_k, one per episode
    episode_spans: list[Span]  # token spans [start, end) of the episodes in the completion
    old_logprobs: torch.Tensor  # (L,) log p_old of each completion token


COMPRESSION_SCALES = ("group", "raw")


def episode_rewards(
    gains: list[list[float]], penalties: list[list[float]], beta: float, scale: str = "group"
) -> list[list[float]]:
    """r_{i,k} = ΔI_{i,k} − β·s·C_{i,k} for one question's group: `gains` and `penalties` per rollout, per
    episode. s = 1 with scale "raw"; with "group" s = mean |ΔI| / mean C over the group's episodes (0 when
    the group has no penalty, or no gain to compare it with)."""
    if scale not in COMPRESSION_SCALES:
        raise ValueError(f"unknown compression scale {scale!r}: use one of {COMPRESSION_SCALES}")
    factor = 1.0
    if scale == "group":
        flat_gains = [abs(g) for rollout in gains for g in rollout]
        flat_penalties = [c for rollout in penalties for c in rollout]
        mean_penalty = math.fsum(flat_penalties) / len(flat_penalties) if flat_penalties else 0.0
        mean_gain = math.fsum(flat_gains) / len(flat_gains) if flat_gains else 0.0
        factor = mean_gain / mean_penalty if mean_penalty > 0 else 0.0
    return [
        [g - beta * factor * c for g, c in zip(rollout_gains, rollout_penalties, strict=True)]
        for rollout_gains, rollout_penalties in zip(gains, penalties, strict=True)
    ]


def length_penalised(outcome: float, n_tokens: int, length_penalty: float) -> float:
    """The length-penalty baseline's rollout reward r_out − λ·L."""
    return outcome - length_penalty * n_tokens


def sequence_advantages(rewards: list[float], lengths: list[int], eps: float = 1e-6) -> list[torch.Tensor]:
    """Plain GRPO: the group z-score of one scalar reward per rollout, the same on every token.

    The length-penalty baseline needs this form: in Algorithm 1 a rollout's reward is spread over its
    tokens and r̃_i is their mean, so a penalty λ·L_i becomes −λ on every rollout's r̃, which the z-score
    removes (r̃ already carries r_out/L_i, an implicit length preference of the α = 0 run)."""
    values = torch.tensor(rewards, dtype=torch.float64)
    spread = float(values.std(unbiased=False)) if len(rewards) > 1 else 0.0
    z = (values - values.mean()) / (spread + eps) if spread >= 1e-12 else torch.zeros_like(values)
    return [torch.full((n,), float(a), dtype=torch.float64) for a, n in zip(z.tolist(), lengths, strict=True)]


def covering_spans(spans: list[Span], n_tokens: int) -> list[Span]:
    """Stretch episode spans so they tile [0, n_tokens): outside tokens join the nearest episode."""
    kept = [(s, e) for s, e in spans if e > s]
    if not kept:
        return [(0, n_tokens)]
    tiled: list[Span] = []
    for i, (_, e) in enumerate(kept):
        start = 0 if i == 0 else tiled[-1][1]
        end = n_tokens if i == len(kept) - 1 else e
        tiled.append((start, max(start, end)))
    return tiled


def token_rewards(rollout: RolloutRewards, alpha: float) -> torch.Tensor:
    """r_{i,t}: each episode's reward R_{i,k} spread over its tokens by surprisal. Shape (L,)."""
    n = rollout.old_logprobs.shape[0]
    rewards = torch.zeros(n, dtype=torch.float64)
    if n == 0:
        return rewards
    kept = [(k, s, e) for k, (s, e) in enumerate(rollout.episode_spans) if e > s]
    if not kept:  # no episode: the whole completion is one, carrying r_out alone
        kept = [(-1, 0, n)]
    tiled = covering_spans([(s, e) for _, s, e in kept], n)
    k_total = len(kept)
    surprisal = (-rollout.old_logprobs.double()).clamp_min(0.0)
    for (k, _, _), (start, end) in zip(kept, tiled, strict=True):
        if end <= start:
            continue
        dense = rollout.episode_rewards[k] if k >= 0 else 0.0
        episode_reward = rollout.outcome / k_total + alpha * dense
        weights = surprisal[start:end]
        total = float(weights.sum())
        weights = weights / total if total > 1e-12 else torch.full_like(weights, 1.0 / (end - start))
        rewards[start:end] = episode_reward * weights
    return rewards


def truncated_mean(values: torch.Tensor, keep: float = 0.95) -> float:
    """Mean after trimming (1 − keep)/2 of the values from each tail."""
    if values.numel() == 0:
        return 0.0
    ordered = torch.sort(values.double()).values
    cut = int(math.floor(values.numel() * (1.0 - keep) / 2.0))
    if ordered.numel() - 2 * cut < 1:
        cut = (ordered.numel() - 1) // 2
    return float(ordered[cut : ordered.numel() - cut].mean())


def group_advantages(
    group: list[RolloutRewards], alpha: float, keep: float = 0.95, eps: float = 1e-6, ratio_clip: float = 5.0
) -> list[torch.Tensor]:
    """A_{i,t} for every rollout of one question's group (list of (L_i,) float64 tensors)."""
    rewards = [token_rewards(r, alpha) for r in group]
    means = torch.tensor([truncated_mean(r, keep) for r in rewards], dtype=torch.float64)
    spread = float(means.std(unbiased=False)) if len(group) > 1 else 0.0
    if spread < 1e-12:
        return [torch.zeros_like(r) for r in rewards]
    z = (means - means.mean()) / (spread + eps)
    advantages = []
    for r, r_bar, a_hat in zip(rewards, means.tolist(), z.tolist(), strict=True):
        if r.numel() == 0:
            advantages.append(r)
            continue
        floor = float(r.abs().mean())
        denominator = max(abs(r_bar), floor, 1e-12)
        sign = -1.0 if r_bar < 0 else 1.0
        ratio = (sign * r / denominator).clamp(-ratio_clip, ratio_clip)
        advantages.append(a_hat * ratio)
    return advantages
