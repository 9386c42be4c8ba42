"""Reward coefficients that change over training: α and β as functions of training progress.

A training library reports where it is (TRL's `trainer_state.global_step` of `max_steps`); the reward
turns that into progress p ∈ [0, 1] and reads each coefficient at p. Ramping β in late lets a policy first
learn to gain information at all, then to gain it compactly. A coefficient is a float (constant) or any
callable of p; `Ramp` is the usual linear one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Coefficient = float | Callable[[float], float]


@dataclass(frozen=True)
class Ramp:
    """`start` until progress `begin`, then linearly to `end` at progress `finish`, then `end`."""

    start: float = field(metadata={"help": "the value before the ramp begins"})
    end: float = field(metadata={"help": "the value once the ramp is done"})
    begin: float = field(default=0.0, metadata={"help": "progress (fraction of max_steps) where the ramp starts"})
    finish: float = field(default=1.0, metadata={"help": "progress where the ramp reaches `end`"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.begin < self.finish <= 1.0:
            raise ValueError(f"a ramp needs 0 <= begin < finish <= 1, got begin={self.begin}, finish={self.finish}")

    def __call__(self, progress: float) -> float:
        share = min(max((progress - self.begin) / (self.finish - self.begin), 0.0), 1.0)
        return self.start + share * (self.end - self.start)


def training_progress(trainer_state: Any | None) -> float:
    """global_step / max_steps from a `transformers.TrainerState` (0 before training or without a state)."""
    if trainer_state is None:
        return 0.0
    max_steps = int(getattr(trainer_state, "max_steps", 0) or 0)
    if max_steps <= 0:
        return 0.0
    return min(max(int(getattr(trainer_state, "global_step", 0)) / max_steps, 0.0), 1.0)


def value_at(coefficient: Coefficient, progress: float) -> float:
    """The coefficient's value at `progress`."""
    return float(coefficient(progress)) if callable(coefficient) else float(coefficient)
