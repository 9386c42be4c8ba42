"""Trainer step time split per rollout engine, side by side in one run: transformers vs in-process vLLM.

The configuration is issue 13's comparison runs (graded arithmetic add2, `worked` prompt, G = 4, 2
questions a step, 64 new tokens, L2T α 0.8) for a few steps from the same seed with each engine; prints
the median seconds of rollout / score / update / weight push per step and each engine's total. Needs
vllm for the vLLM half (run it in the venv `.ci/vllm_stage.sh` builds; without vllm only transformers is
measured). Step 1 includes warm-up, so medians are over steps 2..N.

    VLLM_CPU_OMP_THREADS_BIND=0-1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_CPU_KVCACHE_SPACE=2 \
        .venv-vllm/bin/python benchmarks/bench_train_step.py [--steps 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from l2t_core.engines.vllm_engine import vllm_available
from l2t_core.train import TrainConfig
from l2t_core.train.report import read_jsonl
from l2t_core.train.trainer import train

PARTS = ("rollout_s", "score_s", "update_s", "sync_s")


def measure(engine: str, steps: int, folder: Path) -> dict[str, float]:
    config = TrainConfig(
        data="arithmetic",
        arithmetic_levels="add2",
        prompt_format="worked",
        steps=steps,
        group_size=4,
        batch_size=2,
        max_new_tokens=64,
        lr=1e-5,
        alpha=0.8,
        save_interval=10_000,  # the end-of-run checkpoint only
        keep_checkpoints=1,
        eval_size=0,
        seed=0,
        device="cpu",
        engine=engine,
        output_dir=str(folder / engine),
    )
    train(config)
    records = read_jsonl(folder / engine / "metrics.jsonl")
    later = records[1:] or records
    medians = {part: statistics.median(r[part] for r in later) for part in PARTS}
    medians["step_s"] = sum(medians.values())
    medians["response_tokens"] = statistics.fmean(r["response_tokens"] for r in records)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    engines = ["transformers", "vllm"] if vllm_available() else ["transformers"]
    with tempfile.TemporaryDirectory(prefix="l2t-bench-train-") as tmp:
        results = {engine: measure(engine, args.steps, Path(tmp)) for engine in engines}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"median seconds per step over steps 2..{args.steps}")
    print(f"{'engine':<14}" + "".join(f"{p[:-2]:>10}" for p in PARTS) + f"{'step':>10}{'tokens':>10}")
    for engine, m in results.items():
        print(
            f"{engine:<14}"
            + "".join(f"{m[p]:>10.1f}" for p in PARTS)
            + f"{m['step_s']:>10.1f}{m['response_tokens']:>10.1f}"
        )
    if "vllm" in results:
        t, v = results["transformers"], results["vllm"]
        print(
            f"vllm / transformers: rollout {v['rollout_s'] / t['rollout_s']:.2f}, step {v['step_s'] / t['step_s']:.2f}"
        )


if __name__ == "__main__":
    main()
