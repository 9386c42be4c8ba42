"""Algorithm-1 advantage maths against hand-computed values, including the degenerate groups."""

from __future__ import annotations

import pytest
import torch

from l2t_core.train.advantages import (
    RolloutRewards,
    covering_spans,
    group_advantages,
    length_penalised,
    sequence_advantages,
    token_rewards,
    truncated_mean,
)
from l2t_core.train.loss import grpo_loss


def rollout(outcome, rewards, spans, logprobs):
    return RolloutRewards(outcome, rewards, spans, torch.tensor(logprobs, dtype=torch.float64))


def test_token_rewards_spread_episode_rewards_by_surprisal():
    r = rollout(1.0, [0.1, -0.2], [(0, 2), (2, 4)], [-1.0, -3.0, -2.0, -2.0])
    # R_1 = 1/2 + 0.5·0.1 = 0.55 over weights (1, 3)/4;  R_2 = 1/2 + 0.5·(−0.2) = 0.4 over (2, 2)/4
    assert token_rewards(r, alpha=0.5).tolist() == pytest.approx([0.1375, 0.4125, 0.2, 0.2])


def test_tokens_outside_episodes_join_the_nearest_episode():
    assert covering_spans([(1, 3), (4, 6)], 8) == [(0, 3), (3, 8)]
    r = rollout(0.0, [0.4], [(1, 3)], [-1.0] * 5)  # preamble token 0 and answer tokens 3, 4
    assert token_rewards(r, alpha=1.0).tolist() == pytest.approx([0.08] * 5)


def test_zero_length_episode_and_no_episode():
    r = rollout(1.0, [5.0, 0.3], [(0, 0), (0, 3)], [-1.0, -1.0, -2.0])
    # the empty episode is skipped: the other carries r_out/1 + α·0.3 = 1.3
    assert token_rewards(r, alpha=1.0).tolist() == pytest.approx([0.325, 0.325, 0.65])
    none = rollout(1.0, [], [], [-1.0, -1.0])
    assert token_rewards(none, alpha=0.8).tolist() == pytest.approx([0.5, 0.5])
    certain = rollout(1.0, [0.0], [(0, 2)], [0.0, 0.0])  # no surprisal at all: uniform weights
    assert token_rewards(certain, alpha=0.8).tolist() == pytest.approx([0.5, 0.5])


def test_truncated_mean_trims_both_tails():
    values = torch.arange(1, 41, dtype=torch.float64)
    values[-1] = 1000.0
    assert truncated_mean(values, 0.95) == pytest.approx(sum(range(2, 40)) / 38)
    assert truncated_mean(torch.tensor([3.0]), 0.95) == 3.0
    assert truncated_mean(torch.tensor([]), 0.95) == 0.0


def test_group_z_score_and_rescaling():
    good = rollout(1.0, [0.0], [(0, 2)], [-1.0, -1.0])  # token rewards (0.5, 0.5): r̃ = 0.5
    bad = rollout(0.0, [0.0], [(0, 2)], [-1.0, -3.0])  # token rewards (0, 0): r̃ = 0
    a_good, a_bad = group_advantages([good, bad], alpha=0.8)
    # r̃ = (0.5, 0) -> z = (+1, −1); good tokens: 1 · 0.5/0.5; bad tokens have zero reward -> 0
    assert a_good.tolist() == pytest.approx([1.0, 1.0], rel=1e-5)
    assert a_bad.tolist() == pytest.approx([0.0, 0.0])


def test_dense_rewards_separate_rollouts_of_a_failed_group():
    helpful = rollout(0.0, [0.2, 0.1], [(0, 1), (1, 2)], [-1.0, -1.0])
    harmful = rollout(0.0, [-0.1, -0.2], [(0, 1), (1, 2)], [-1.0, -1.0])
    a_help, a_harm = group_advantages([helpful, harmful], alpha=0.8)
    assert (a_help > 0).all() and (a_harm < 0).all()  # outcome-only GRPO would give both 0
    # r̃ = (0.12, −0.12): z = (+1, −1); helpful tokens 0.16/0.12 and 0.08/0.12 of +1
    assert a_help.tolist() == pytest.approx([0.16 / 0.12, 0.08 / 0.12], rel=1e-5)
    # negative r̃ keeps its sign: harmful tokens (−0.08, −0.16) / 0.12 · sign(−) · (−1) -> negative
    assert a_harm.tolist() == pytest.approx([-0.08 / 0.12, -0.16 / 0.12], rel=1e-5)


@pytest.mark.parametrize("outcome", [0.0, 1.0])
def test_degenerate_groups_get_no_update(outcome):
    same = [rollout(outcome, [0.0], [(0, 3)], [-1.0, -2.0, -1.0]) for _ in range(4)]
    assert all(a.abs().sum() == 0 for a in group_advantages(same, alpha=0.8))


def test_rescaling_cannot_explode_when_token_rewards_cancel():
    mixed = rollout(0.0, [1.0, -1.0], [(0, 2), (2, 4)], [-1.0] * 4)  # r̃ = 0 exactly
    other = rollout(1.0, [0.0], [(0, 4)], [-1.0] * 4)
    a_mixed, _ = group_advantages([mixed, other], alpha=1.0)
    assert torch.isfinite(a_mixed).all() and a_mixed.abs().max() <= 5.0


def test_grpo_loss_clips_and_penalises_kl():
    old = torch.log(torch.tensor([0.5, 0.5]))
    new = torch.log(torch.tensor([0.9, 0.1])).requires_grad_(True)
    adv = torch.tensor([1.0, 1.0])
    loss, kl = grpo_loss(new, old, adv, clip_eps=0.2, kl_coef=0.0)
    # ratios (1.8, 0.2): min(1.8, 1.2)·1 = 1.2 and min(0.2, 0.8)·1 = 0.2 -> loss = −(1.2 + 0.2)/2
    assert float(loss.detach()) == pytest.approx(-0.7) and kl == 0.0
    same = torch.log(torch.tensor([0.9, 0.1]))
    _, kl_zero = grpo_loss(new, old, adv, 0.2, 0.1, ref_logprobs=same)
    assert kl_zero == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="reference"):
        grpo_loss(new, old, adv, 0.2, 0.1)


def test_length_penalty_baseline_prefers_the_shorter_of_equal_outcomes():
    wrong_short, wrong_long, right_long = (
        length_penalised(0.0, 10, 0.01),
        length_penalised(0.0, 40, 0.01),
        length_penalised(1.0, 40, 0.01),
    )
    short, long_, right = sequence_advantages([wrong_short, wrong_long, right_long], [10, 40, 40])
    assert short.shape == (10,) and right.shape == (40,)
    assert float(right[0]) > float(short[0]) > float(long_[0])  # correct first, then the shorter
    assert torch.all(short == short[0])  # one advantage for every token of a rollout
    # Spread through Algorithm 1 instead, the penalty is −λ on every r̃ and cancels in the z-score:
    # two wrong rollouts of different length would get no advantage at all.
    spread = group_advantages(
        [rollout(length_penalised(0.0, n, 0.01), [], [], [-1.0] * n) for n in (10, 40)], alpha=0.0, keep=1.0
    )
    assert all(torch.all(a == 0) for a in spread)
    (tied,) = {float(a[0]) for a in sequence_advantages([0.5, 0.5], [3, 4])}
    assert tied == 0.0


def test_length_penalty_needs_alpha_zero():
    from l2t_core.train import TrainConfig

    with pytest.raises(ValueError, match="set alpha 0"):
        TrainConfig(length_penalty=0.001)
    assert TrainConfig(length_penalty=0.001, alpha=0.0).length_penalty == 0.001


def test_group_scale_puts_the_penalty_on_the_gains_scale_and_keeps_its_ratios() -> None:
    from l2t_core.train.advantages import episode_rewards

    gains = [[0.002, -0.001], [0.003]]
    penalties = [[1e-8, 3e-8], [2e-8]]  # drift-mode C: five decades below ΔI
    raw = episode_rewards(gains, penalties, 0.6, "raw")
    assert raw == [[g - 0.6 * c for g, c in zip(gr, cr, strict=True)] for gr, cr in zip(gains, penalties, strict=True)]
    scaled = episode_rewards(gains, penalties, 1.0, "group")
    charged = [g - r for gr, rr in zip(gains, scaled, strict=True) for g, r in zip(gr, rr, strict=True)]
    mean_gain = (0.002 + 0.001 + 0.003) / 3
    assert abs(sum(charged) / 3 - mean_gain) < 1e-12  # the group's mean penalty is its mean |ΔI|
    assert charged[1] / charged[0] == pytest.approx(3.0) and charged[2] / charged[0] == pytest.approx(2.0)
    assert episode_rewards(gains, [[0.0, 0.0], [0.0]], 0.6, "group") == gains  # nothing to charge
    with pytest.raises(ValueError, match="compression scale"):
        episode_rewards(gains, penalties, 0.6, "per_group")
