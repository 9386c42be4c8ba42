"""Packed scoring under each split attention against the naive path, on one device, for a random model
of a real shape: the check that the GPU kernels compute what one forward per prefix computes.

The tests hold packed == naive on the CPU with real weights; a GPU cannot get the weights, and random
weights are as good a check of exactness (the paths differ in how they run the model, not in what
the weights are). float32, bench_scoring's candidates (K = 4–12), multi-target J on (so answers follow
a shared probe piece). Reports, per attention path, the largest relative difference of every log J,
compression penalty and mean log-prob from the naive path's, and whether it is within the tests'
tolerance, and the times of both paths (the first packed call includes compiling a flex kernel).

    python benchmarks/packed_exactness.py --shape DIR --device cuda --json
    python benchmarks/packed_exactness.py --shape qwen2.5-1.5b --tokenizer DIR --device cuda --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # this checkout's code

from candidates import benchmark_pool  # noqa: E402
from random_model import BUILT_IN_SHAPES, random_causal_lm, shape_config  # noqa: E402

from l2t_core.episodes import prompt_format  # noqa: E402
from l2t_core.models import load_model, resolve_device  # noqa: E402
from l2t_core.scoring import L2TScorer  # noqa: E402
from l2t_core.scoring.attention_paths import ATTENTION_PATHS  # noqa: E402
from l2t_core.scoring.results import CandidateScore  # noqa: E402
from tests.scoring.test_packed_vs_naive import RTOL  # noqa: E402  # the exactness tests' tolerance


def quantities(scores: list[CandidateScore]) -> list[float | None]:
    """Every number the comparison covers, in a fixed order."""
    out: list[float | None] = []
    for s in scores:
        out.append(s.mean_logprob)
        for e in s.episodes:
            out += [e.log_j_before, e.log_j_after, e.compression_penalty]
        if s.answer_probes is not None:
            out += [v for row in s.answer_probes.log_j for v in row]
    return out


def worst_relative_difference(packed: list[float | None], naive: list[float | None]) -> float:
    """max |packed − naive| / |naive| (inf where one is None and the other not, or naive is 0 and packed not)."""
    if len(packed) != len(naive):
        return math.inf
    worst = 0.0
    for p, n in zip(packed, naive, strict=True):
        if p is None or n is None:
            worst = worst if p is n else math.inf
        elif n == 0.0:
            worst = worst if p == 0.0 else math.inf
        else:
            worst = max(worst, abs(p - n) / abs(n))
    return worst


def timed(fn: Any, device: torch.device) -> tuple[Any, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", required=True, help="folder with config.json, or " + ", ".join(BUILT_IN_SHAPES))
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the shape folder)")
    parser.add_argument("--layers", type=int, default=None, help="keep this many decoder layers")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--attention", default=",".join(ATTENTION_PATHS), help="comma-separated split attentions")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--answer-probes", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    attentions = args.attention.split(",")
    if unknown := set(attentions) - set(ATTENTION_PATHS):
        parser.error(f"unknown --attention {sorted(unknown)}: use {', '.join(ATTENTION_PATHS)}")
    device = resolve_device(args.device)
    tokenizer = load_model(args.tokenizer or args.shape, weights=False).tokenizer
    config = shape_config(args.shape, len(tokenizer), args.layers)
    model = random_causal_lm(config, device, torch.float32)
    question, candidates = benchmark_pool(tokenizer, n=args.candidates)
    prompt = prompt_format("episode").render(tokenizer, question["question"]).text
    score: dict[str, Any] = dict(reference=question["answer"], answer_probes=args.answer_probes)

    naive_scorer = L2TScorer(model, tokenizer)
    naive, naive_s = timed(lambda: naive_scorer.score(prompt, candidates, method="naive", **score), device)
    expected = quantities(naive)
    report: dict[str, Any] = {
        "shape": args.shape,
        "layers": config.num_hidden_layers,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "candidates": len(candidates),
        "compared_values": len(expected),
        "rtol": RTOL,
        "naive_s": round(naive_s, 3),
        "paths": {},
    }
    for name in attentions:
        scorer = L2TScorer(model, tokenizer, attention=name)  # type: ignore[arg-type]
        first, first_s = timed(lambda scorer=scorer: scorer.score(prompt, candidates, **score), device)
        again, again_s = timed(lambda scorer=scorer: scorer.score(prompt, candidates, **score), device)
        worst = worst_relative_difference(quantities(first), expected)
        report["paths"][name] = {
            "max_rel_diff": worst,
            "within_rtol": worst <= RTOL and quantities(again) == quantities(first),
            "first_s": round(first_s, 3),
            "packed_s": round(again_s, 3),
        }
    report["all_within_rtol"] = all(p["within_rtol"] for p in report["paths"].values())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    sys.exit(0 if report["all_within_rtol"] else 1)


if __name__ == "__main__":
    main()
