import math

import pytest
import torch

from l2t_core.reward import RewardConfig, aggregate, choose_targets, compression_penalty, fitting_gains


def test_fitting_gains_telescope():
    j = [0.1, 0.05, 0.4, 0.9]
    gains = fitting_gains(j)
    assert gains == pytest.approx([-0.05, 0.35, 0.5])
    assert math.fsum(gains) == pytest.approx(j[-1] - j[0])


def test_step_mode_penalty_matches_the_closed_form():
    g = torch.tensor([[1.0, 2.0], [0.0, -2.0]])  # ‖g‖² = 9
    config = RewardConfig(step_size=0.1, damping=1e-5)
    eta = 0.1
    assert compression_penalty(g, config) == pytest.approx(eta**2 * 81 + 1e-5 * eta**2 * 9)


def test_drift_mode_uses_the_projected_weight_change():
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    drift = torch.tensor([[0.5, 3.0], [0.0, 0.25]])
    config = RewardConfig(delta_mode="drift", damping=0.0)
    assert compression_penalty(g, config, drift) == pytest.approx((0.5 + 0.5) ** 2)
    with pytest.raises(ValueError, match="reference model"):
        compression_penalty(g, config)


@pytest.mark.parametrize(("how", "expected"), [("sum", 0.5), ("mean", 0.125), ("min", -0.5), ("last", 0.25)])
def test_aggregations(how, expected):
    assert aggregate([0.5, -0.5, 0.25, 0.25], how) == pytest.approx(expected)
    assert aggregate([], how) == 0.0


def test_targets_by_mode():
    answers = ["1/2", None, "0.5", "3"]
    assert choose_targets(answers, "self") == answers
    assert choose_targets(answers, "consensus") == ["1/2"] * 4  # 1/2 and 0.5 are one answer
    assert choose_targets(answers, "self", reference=" 7 ") == ["7"] * 4
    assert choose_targets([None, None], "consensus") == [None, None]
    with pytest.raises(ValueError, match="needs a reference"):
        choose_targets(answers, "reference")


@pytest.mark.parametrize(
    "bad",
    [
        {"target": "oracle"},
        {"delta_mode": "x"},
        {"aggregation": "max"},
        {"rank_ratio": 0.0},
        {"beta": -1.0},
        {"step_size": 0.0},
        {"max_episodes": 0},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        RewardConfig(**bad)


def test_config_overrides():
    config = RewardConfig().with_overrides(beta=0.0, aggregation=None)
    assert config.beta == 0.0 and config.aggregation == "sum"
    with pytest.raises(ValueError, match="unknown"):
        RewardConfig().with_overrides(gamma=1.0)
