"""GRPO fine-tuning with the L2T dense episode reward: `python -m l2t_core.train --help`."""

from l2t_core.train.config import TrainConfig
from l2t_core.train.trainer import Trainer, train

__all__ = ["TrainConfig", "Trainer", "train"]
