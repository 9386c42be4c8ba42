"""The `l2t` command. Subcommands register themselves here; each one validates its input and turns
library errors into a one-line `error: …` and exit status 2 instead of a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from l2t_core.engines import EngineError
from l2t_core.eval.problems import DataError
from l2t_core.models import ModelLoadError
from l2t_core.reward import AGGREGATIONS, RewardConfig
from l2t_core.scoring import CandidateScore


class CliError(Exception):
    """A user-facing error: printed as `error: …`, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l2t", description="L2T information-gain episode rewards")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="per-episode L2T rewards for completions of one question")
    score.add_argument("--question", required=True, help="the question the completions answer")
    score.add_argument(
        "--completion-file",
        action="append",
        required=True,
        type=Path,
        dest="completion_files",
        help="a file holding one completion (repeat for several candidates)",
    )
    score.add_argument("--reference", default=None, help="reference answer; J is then measured against it")
    score.add_argument(
        "--target",
        choices=["self", "consensus"],
        default="self",
        help="target answer when no reference is given (default: self)",
    )
    score.add_argument("--beta", type=float, default=None, help="compression weight β (default 0.6)")
    score.add_argument("--aggregation", choices=AGGREGATIONS, default=None, help="path score (default sum)")
    score.add_argument("--model", default="default", help="'default' (SmolLM2 GGUF), a folder or a cached HF id")
    score.add_argument("--device", default="auto")
    score.add_argument("--method", choices=["packed", "naive"], default="packed")
    score.add_argument("--json", action="store_true", help="print JSON instead of a table")
    score.set_defaults(handler=run_score)

    serve = sub.add_parser("serve", help="run the HTTP server (defaults: embedded SmolLM2, transformers engine)")
    serve.add_argument("--model", default=None, help="'default', a folder, a .gguf file or a cached HF id")
    serve.add_argument("--engine", choices=["transformers", "vllm", "openai"], default=None)
    serve.add_argument("--remote-url", default=None, help="OpenAI-compatible server for --engine openai")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--device", default=None)
    serve.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None)
    serve.set_defaults(handler=run_serve)

    generate = sub.add_parser("generate", help="sample N candidates for a question and show their episode rewards")
    generate.add_argument("question")
    generate.add_argument("-n", type=int, default=8)
    generate.add_argument("--max-tokens", type=int, default=256)
    generate.add_argument("--temperature", type=float, default=0.8)
    generate.add_argument("--top-p", type=float, default=0.95)
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument(
        "--strategy",
        choices=["best_of_n", "weighted_vote", "majority", "loglik", "confidence", "first", "beam_prune"],
        default="best_of_n",
    )
    generate.add_argument("--token-budget", type=int, default=None, help="beam_prune: generated tokens in all")
    generate.add_argument("--reference", default=None)
    generate.add_argument("--target", choices=["self", "consensus"], default="self")
    generate.add_argument("--model", default="default")
    generate.add_argument("--device", default="auto")
    generate.add_argument("--json", action="store_true")
    generate.set_defaults(handler=run_generate)

    from l2t_core.eval.command import add_arguments, run_eval

    evaluate = sub.add_parser("eval", help="compare rerankers and beam-prune on evaluation suites (EVAL.md)")
    add_arguments(evaluate)
    evaluate.set_defaults(handler=run_eval)
    return parser


def run_score(args: argparse.Namespace) -> int:
    from l2t_core.episodes import build_messages, render_prompt
    from l2t_core.models import load_model
    from l2t_core.scoring import L2TScorer

    if not args.question.strip():
        raise CliError("--question is empty")
    completions = []
    for path in args.completion_files:
        try:
            completions.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read completion file {path}: {exc}") from exc
    try:
        config = RewardConfig().with_overrides(target=args.target, beta=args.beta, aggregation=args.aggregation)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    loaded = load_model(args.model, device=args.device, dtype="float32")
    scorer = L2TScorer(loaded.model, loaded.tokenizer, config)
    prompt = render_prompt(loaded.tokenizer, build_messages(args.question))
    results = scorer.score(prompt, completions, reference=args.reference, method=args.method)
    if args.json:
        payload = [{"file": str(p), **r.to_dict()} for p, r in zip(args.completion_files, results, strict=True)]
        print(json.dumps({"candidates": payload}, indent=2))
    else:
        for path, result in zip(args.completion_files, results, strict=True):
            print(format_candidate(str(path), result))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.core.config import Settings
    from app.main import create_app

    overrides = {
        key: value
        for key, value in {
            "model": args.model,
            "engine": args.engine,
            "remote_url": args.remote_url,
            "host": args.host,
            "port": args.port,
            "device": args.device,
            "dtype": args.dtype,
        }.items()
        if value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from l2t_core.engines import SamplingParams
    from l2t_core.models import load_model
    from l2t_core.pipeline import ReasoningPipeline, episode_messages
    from l2t_core.search import BeamPruneConfig

    try:
        if args.strategy == "beam_prune":
            BeamPruneConfig(width=args.n, token_budget=args.token_budget or args.n * args.max_tokens)
        params = SamplingParams(
            n=args.n, max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
        )
        config = RewardConfig(target=args.target)
        messages = episode_messages(args.question)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    loaded = load_model(args.model, device=args.device)
    pipeline = ReasoningPipeline.from_model(loaded, "transformers", config)
    try:
        if args.strategy == "beam_prune":
            budget = args.token_budget or args.n * args.max_tokens
            beam = BeamPruneConfig(width=args.n, token_budget=budget)
            result = pipeline.search(pipeline.render(messages), params, beam)
        else:
            result = pipeline.generate(pipeline.render(messages), params, args.strategy, args.reference)
    finally:
        pipeline.engine.close()
    if args.json:
        ranked = [
            {"index": r.index, "finish_reason": r.finish_reason, "text": r.score.text, **r.score.to_dict()}
            for r in result.ranked
        ]
        print(
            json.dumps(
                {
                    "strategy": args.strategy,
                    "candidates": ranked,
                    "usage": result.usage.__dict__,
                    "timings": result.timings.__dict__,
                },
                indent=2,
            )
        )
        return 0
    color = sys.stdout.isatty()
    for rank, r in enumerate(result.ranked):
        title = f"#{rank + 1} (sample {r.index}, {r.finish_reason})"
        print(format_candidate(_bold(title, color), r.score, color))
        print()
    u, t = result.usage, result.timings
    print(
        f"tokens: prompt {u.prompt_tokens}, generated {u.completion_tokens}, scored {u.scoring_tokens}; "
        f"generate {t.generate_ms:.0f} ms, score {t.score_ms:.0f} ms"
    )
    return 0


def _bold(text: str, color: bool) -> str:
    return f"\033[1m{text}\033[0m" if color else text


def _signed(value: float, text: str, color: bool) -> str:
    if not color or value == 0:
        return text
    return f"\033[32m{text}\033[0m" if value > 0 else f"\033[31m{text}\033[0m"


def format_candidate(name: str, result: CandidateScore, color: bool = False) -> str:
    """A readable per-episode table for one candidate."""
    split = "tags" if result.tagged else "fallback split"
    lines = [
        f"{name}: answer={result.answer!r} target={result.target!r} score={result.score:+.5f} "
        f"({len(result.episodes)} episodes by {split}, {result.n_tokens} tokens)",
        f"  {'k':>3} {'tokens':>6} {'J_before':>10} {'J_after':>10} {'gain':>10} {'penalty':>10} {'reward':>10}  text",
    ]
    for e in result.episodes:
        text = " ".join(e.text.split())
        text = text if len(text) <= 48 else text[:45] + "..."
        gain = _signed(e.fitting_gain, f"{e.fitting_gain:>+10.3e}", color)
        reward = _signed(e.reward, f"{e.reward:>+10.3e}", color)
        lines.append(
            f"  {e.index:>3} {e.n_tokens:>6} {e.j_before:>10.3e} {e.j_after:>10.3e} {gain} "
            f"{e.compression_penalty:>10.3e} {reward}  {text}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.handler(args))
    except (CliError, ModelLoadError, EngineError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
