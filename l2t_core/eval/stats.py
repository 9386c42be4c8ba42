"""Confidence intervals: percentile bootstrap over problems (the unit that was sampled)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float  # 95% interval
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": [self.low, self.high], "n": self.n}

    def percent(self) -> str:
        return f"{100 * self.mean:.1f} [{100 * self.low:.1f}, {100 * self.high:.1f}]"


def bootstrap_mean(values: Sequence[float], seed: int = 0, resamples: int = RESAMPLES) -> Estimate:
    """Mean of per-problem values with a 95% percentile-bootstrap interval."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(float(data.mean()), float(low), float(high), int(data.size))


def bootstrap_difference(a: Sequence[float], b: Sequence[float], seed: int = 0) -> Estimate:
    """Paired difference a − b over the same problems (tighter than comparing two separate intervals)."""
    if len(a) != len(b):
        raise ValueError("paired values must have the same length")
    return bootstrap_mean([x - y for x, y in zip(a, b, strict=True)], seed)
