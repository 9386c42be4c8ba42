"""`python -m l2t_core.train [--config FILE.yaml] [--flags …]` (or `accelerate launch -m l2t_core.train …`)."""

from __future__ import annotations

import json
import logging
import sys

from l2t_core.engines import EngineError
from l2t_core.models import ModelLoadError
from l2t_core.train.config import TrainConfig
from l2t_core.train.run_lock import OutputDirLocked
from l2t_core.train.trainer import evaluate_only, train


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = TrainConfig.from_args(argv)
    try:
        if config.eval_only:
            print(json.dumps(evaluate_only(config)))
            return 0
        last = train(config)
    except (ModelLoadError, OutputDirLocked, EngineError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if last is not None:  # the main process writes the checkpoints; the others return None
        print(f"done: last checkpoint {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
