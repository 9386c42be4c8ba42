"""`l2t eval` / `python -m l2t_core.eval`: arguments → EvalSettings → run → report files."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from l2t_core.config_flags import add_prompt_format, add_reward_flags, add_sampling_flags, reward_from_flags
from l2t_core.engines import ENGINES
from l2t_core.engines.engine_args import add_engine_arg_flags, checked_engine_args, engine_args_from
from l2t_core.eval.cache import eval_cache_root
from l2t_core.eval.problems import DataError
from l2t_core.eval.suites import SPLITS, SUITES
from l2t_core.models.loading import DTYPES
from l2t_core.search import POOL_STRATEGIES, BeamPruneConfig, get_strategy
from l2t_core.search.beam_prune import PARTIAL_TARGETS, VALUES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, help=f"suites ({', '.join(SUITES)}) or .jsonl files")
    parser.add_argument("--limit", type=int, default=None, help="first N problems (arithmetic: how many to make)")
    parser.add_argument("--split", choices=SPLITS, default="all", help="tune = even positions, test = odd")
    parser.add_argument("--n", type=int, default=8, help="pool size; methods are reported at N = 1, 2, 4, … ≤ n")
    parser.add_argument(
        "--methods",
        default=",".join(POOL_STRATEGIES),
        help=f"comma list of pool strategies (rerankers and adaptive): {', '.join(POOL_STRATEGIES)}",
    )
    parser.add_argument("--beam-budgets", default="", help="comma list of beam-prune token budgets (empty: none)")
    parser.add_argument("--beam-width", type=int, default=8)
    parser.add_argument("--episode-tokens", type=int, default=48, help="beam-prune: token cap of one episode")
    parser.add_argument(
        "--beam-partial-target", choices=PARTIAL_TARGETS, default="probe", help="beam-prune: J for unfinished paths"
    )
    parser.add_argument(
        "--beam-value", choices=VALUES, default="reward", help="beam-prune: what live paths are pruned by"
    )
    parser.add_argument(
        "--beam-exit-confidence",
        type=float,
        default=None,
        help="beam-prune: a path exits with its probe answer once J of it reaches this (default: off)",
    )
    parser.add_argument("--engine", choices=ENGINES, default="transformers")
    parser.add_argument("--model", default="default", help="'default' (SmolLM2 GGUF), a folder or a cached HF id")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32")
    parser.add_argument(
        "--scorer-model", default=None, help="a second model that scores what --model generates (default: --model)"
    )
    parser.add_argument("--scorer-device", default=None, help="the scorer model's device (default: --device)")
    parser.add_argument("--remote-url", default=None, help="OpenAI-compatible server for --engine openai")
    add_engine_arg_flags(parser)
    add_sampling_flags(parser, defaults={"max_tokens": 128})
    parser.add_argument("--seed", type=int, default=0, help="problem generation and bootstrap seed")
    add_prompt_format(parser)
    add_reward_flags(parser)
    parser.add_argument("--compare-n", type=int, default=8, help="N for the paired comparisons")
    parser.add_argument("--tune", action="store_true", help="also grid-search β/aggregation/target/normalisation")
    parser.add_argument("--workers", type=int, default=4, help="problems in flight (the engine batches them)")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md and the plot")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="generation/score cache (default ~/.cache/l2t/eval)"
    )
    parser.add_argument("--no-progress", action="store_true")


# Options that say where this machine keeps its cache or how it shows progress, not what was measured.
LOCAL_OPTIONS = {"--cache-dir": 1, "--no-progress": 0}


def reproduce_command(argv: Sequence[str]) -> str:
    """`l2t eval …` as it was given, less the machine-local options, for the report's reproduce line."""
    kept: list[str] = []
    skip = 0
    for word in argv:
        if skip:
            skip -= 1
        elif word.split("=", 1)[0] in LOCAL_OPTIONS:
            skip = 0 if "=" in word else LOCAL_OPTIONS[word]
        else:
            kept.append(word)
    return "l2t eval " + shlex.join(kept)


def run_eval(args: argparse.Namespace) -> int:
    from l2t_core.eval.harness import EvalSettings, run
    from l2t_core.eval.report import write_report

    try:
        methods = tuple(get_strategy(m.strip()).name for m in args.methods.split(",") if m.strip())
        budgets = tuple(int(b) for b in args.beam_budgets.split(",") if b.strip())
        reward = reward_from_flags(args)
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    vllm_args = checked_engine_args(args.engine, engine_args_from(args))
    searches = [m for m in methods if m not in POOL_STRATEGIES]
    if searches:
        raise DataError(f"{searches} are searches, not rerankers: use --beam-budgets for beam-prune")
    checks = [
        (args.n >= 1, "--n must be >= 1"),
        (args.limit is None or args.limit >= 1, "--limit must be >= 1"),
        (args.max_tokens >= 1, "--max-tokens must be >= 1"),
        (
            all(b >= args.episode_tokens + BeamPruneConfig.answer_tokens for b in budgets),
            f"every beam budget must be >= --episode-tokens + {BeamPruneConfig.answer_tokens} (the answer probe)",
        ),
        (1 <= args.beam_width <= args.n, "--beam-width must be between 1 and --n"),
        (
            args.beam_exit_confidence is None or 0 < args.beam_exit_confidence <= 1,
            "--beam-exit-confidence must be in (0, 1]",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise DataError(message)
    settings = EvalSettings(
        data=args.data,
        out=args.out,
        cache=args.cache_dir or eval_cache_root(),
        limit=args.limit,
        n=args.n,
        methods=methods,
        beam_budgets=budgets,
        engine=args.engine,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        scorer_model=args.scorer_model,
        scorer_device=args.scorer_device,
        remote_url=args.remote_url,
        vllm_args=vllm_args,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        split=args.split,
        reward=reward,
        prompt_format=args.prompt_format,
        beam_width=args.beam_width,
        episode_tokens=args.episode_tokens,
        beam_partial_target=args.beam_partial_target,
        beam_value=args.beam_value,
        beam_exit_confidence=args.beam_exit_confidence,
        compare_n=args.compare_n,
        tune=args.tune,
        workers=args.workers,
        progress=not args.no_progress,
    )
    results = run(settings)
    results["command"] = reproduce_command(sys.argv[2:] if sys.argv[1:2] == ["eval"] else sys.argv[1:])
    for path in write_report(results, args.out):
        print(path)
    return 0
