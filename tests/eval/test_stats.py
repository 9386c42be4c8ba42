"""Bootstrap intervals behave like intervals."""

from __future__ import annotations

import pytest

from l2t_core.eval.stats import bootstrap_difference, bootstrap_mean


def test_interval_brackets_the_mean_and_narrows_with_more_problems() -> None:
    small = bootstrap_mean([1, 0, 0, 1, 0, 0, 0, 1, 0, 0])
    large = bootstrap_mean([1, 0, 0, 1, 0, 0, 0, 1, 0, 0] * 20)
    assert small.low <= small.mean <= small.high
    assert small.mean == pytest.approx(0.3)
    assert (large.high - large.low) < (small.high - small.low) / 3
    assert bootstrap_mean([1.0] * 5).low == 1.0


def test_paired_difference_and_degenerate_inputs() -> None:
    a = [1, 1, 0, 1, 0, 1, 1, 1]
    b = [0, 1, 0, 0, 0, 1, 0, 1]
    diff = bootstrap_difference(a, b)
    assert diff.mean == pytest.approx(3 / 8)
    assert diff.low > 0
    with pytest.raises(ValueError):
        bootstrap_difference([1], [1, 0])
    assert bootstrap_mean([]).n == 0
