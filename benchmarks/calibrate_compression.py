"""Calibrate η (step_size) so that the compression penalty C_k and the fitting gain |ΔI_k| are comparable.

In 'step' mode C_k = η²‖g̃_k‖⁴ + λη²‖g̃_k‖², whose raw scale depends on the model. We pick η so that
the median C_k equals the median |ΔI_k| on GSM8K gold solutions (reference target, one episode per
solution line), which makes β = 0.6 weigh comparable quantities. Prints the η for the chosen model.

    python benchmarks/calibrate_compression.py [--model default] [--limit 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from candidates import load_gsm8k  # noqa: E402

from l2t_core.episodes import prompt_format  # noqa: E402
from l2t_core.models import load_model  # noqa: E402
from l2t_core.reward import RewardConfig  # noqa: E402
from l2t_core.scoring import L2TScorer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    loaded = load_model(args.model)
    unit = RewardConfig(step_size=1.0, damping=0.0)  # C_k = ‖g̃_k‖⁴ exactly
    scorer = L2TScorer(loaded.model, loaded.tokenizer, unit)
    gains: list[float] = []
    grad_fourth: list[float] = []
    for row in load_gsm8k()[: args.limit]:
        prompt = prompt_format("episode").render(loaded.tokenizer, row["question"]).text
        solution = row["solution"].split("####")[0].strip() + f"\nThe answer is \\boxed{{{row['answer']}}}."
        (result,) = scorer.score(prompt, [solution], reference=row["answer"])
        gains += [abs(e.fitting_gain) for e in result.episodes]
        grad_fourth += [e.compression_penalty for e in result.episodes]
    median_gain = statistics.median(gains)
    median_g4 = statistics.median(grad_fourth)
    eta = math.sqrt(median_gain / median_g4)
    report = {
        "model": args.model,
        "problems": args.limit,
        "episodes": len(gains),
        "median_abs_fitting_gain": median_gain,
        "median_grad_norm_fourth": median_g4,
        "step_size": eta,
    }
    print(json.dumps(report, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))


if __name__ == "__main__":
    main()
