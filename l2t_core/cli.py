"""The `l2t` command's library subcommands (score, generate, eval, pair, label). Each validates its input and turns
library errors into a one-line `error: …` and exit status 2 instead of a traceback. `l2t serve` lives
with the HTTP app (`app/cli.py` adds it to this parser), so the library never imports the app."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from l2t_core.admission import TokenLimits, admit_generation, admit_scoring
from l2t_core.config_flags import (
    SAMPLING_FLAGS,
    add_prompt_format,
    add_reward_flags,
    add_sampling_flags,
    flag_values,
    reward_from_flags,
)
from l2t_core.engines import EngineError
from l2t_core.engines.engine_args import add_engine_arg_flags, checked_engine_args, engine_args_from
from l2t_core.errors import InvalidRequest
from l2t_core.eval.problems import DataError
from l2t_core.models import ModelLoadError, context_length
from l2t_core.reward import RewardConfig
from l2t_core.scoring import COMPRESSION_ABSENT, SCORERS, CandidateScore
from l2t_core.scoring.engine_scorer import check_measurable
from l2t_core.search import DEFAULT_STRATEGY, SERVED_STRATEGIES, STRATEGIES
from l2t_core.search.beam_prune import VALUES


class CliError(Exception):
    """A user-facing error: printed as `error: …`, exit status 2."""


def add_reward_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", default=None, help="reference answer; J is then measured against it")
    add_reward_flags(parser)


def add_scorer_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scorer-model",
        default=None,
        help="a second model that measures J, rewards and log-probs of what --model generates (default: --model)",
    )
    parser.add_argument("--scorer-device", default=None, help="the scorer model's device (default: --device)")
    parser.add_argument(
        "--scorer",
        choices=SCORERS,
        default=SCORERS[0],
        help="where J and log-probs are measured: torch (a scorer holding the weights; also the compression "
        "penalty) or engine (the generation engine itself, no second copy of the model; no compression "
        "penalty, so strategies ranking by the L2T path score need --beta 0)",
    )


def reward_config(args: argparse.Namespace) -> RewardConfig:
    try:
        return reward_from_flags(args)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def build_parser(extensions: Sequence[Callable[[Any], None]] = ()) -> argparse.ArgumentParser:
    """The parser; each extension adds subcommands to the subparsers object (the app adds `serve`)."""
    parser = argparse.ArgumentParser(prog="l2t", description="L2T information-gain episode rewards")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for extend in extensions:
        extend(sub)

    score = sub.add_parser("score", help="per-episode L2T rewards for completions of one question")
    score.add_argument("--question", required=True, help="the question the completions answer")
    score.add_argument(
        "--completion-file",
        action="append",
        required=True,
        type=Path,
        dest="completion_files",
        help="a file holding one completion: the whole assistant reply (repeat for several candidates)",
    )
    add_reward_overrides(score)
    add_prompt_format(score)
    score.add_argument("--model", default="default", help="'default' (SmolLM2 GGUF), a folder or a cached HF id")
    score.add_argument("--device", default="auto")
    score.add_argument("--method", choices=["packed", "naive"], default="packed")
    score.add_argument("--json", action="store_true", help="print JSON instead of a table")
    score.set_defaults(handler=run_score)

    generate = sub.add_parser("generate", help="sample N candidates for a question and show their episode rewards")
    generate.add_argument("question")
    generate.add_argument("-n", type=int, default=8, help="candidates sampled (default 8)")
    add_sampling_flags(generate, (*SAMPLING_FLAGS, "seed"))
    generate.add_argument(
        "--strategy",
        choices=SERVED_STRATEGIES,
        default=DEFAULT_STRATEGY,
        help="; ".join(f"{name}: {STRATEGIES[name].help}" for name in SERVED_STRATEGIES),
    )
    generate.add_argument("--token-budget", type=int, default=None, help="beam_prune: generated tokens in all")
    generate.add_argument(
        "--beam-value", choices=VALUES, default=None, help="beam_prune: what live paths are pruned by (reward)"
    )
    generate.add_argument(
        "--beam-exit-confidence",
        type=float,
        default=None,
        help="beam_prune: a path exits with its probe answer once J of it reaches this (off)",
    )
    add_reward_overrides(generate)
    add_prompt_format(generate)
    generate.add_argument("--model", default="default")
    generate.add_argument("--device", default="auto")
    generate.add_argument(
        "--engine", choices=["transformers", "vllm"], default="transformers", help="in-process generation engine"
    )
    add_engine_arg_flags(generate)
    add_scorer_model(generate)
    generate.add_argument("--json", action="store_true")
    generate.set_defaults(handler=run_generate)

    from l2t_core.eval.command import add_arguments, run_eval

    evaluate = sub.add_parser("eval", help="compare rerankers and beam-prune on evaluation suites (docs/evaluation.md)")
    add_arguments(evaluate)
    evaluate.set_defaults(handler=run_eval)

    from l2t_core.eval import paired

    pair = sub.add_parser("pair", help="paired difference of two eval runs' rows over their shared problems")
    paired.add_arguments(pair)
    pair.set_defaults(handler=paired.run_pair)

    from l2t_core.integrations import prm_labels

    label = sub.add_parser("label", help="a step-labelled data set (TRL stepwise supervision) from ΔI_k, for a PRM")
    prm_labels.add_arguments(label)
    label.set_defaults(handler=prm_labels.run_label)
    return parser


def run_score(args: argparse.Namespace) -> int:
    from l2t_core.episodes import prompt_format
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
    config = reward_config(args)
    loaded = load_model(args.model, device=args.device, dtype="float32")
    scorer = L2TScorer(loaded.model, loaded.tokenizer, config)
    prompt = prompt_format(args.prompt_format).render(loaded.tokenizer, args.question)
    lengths = [len(loaded.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions]
    try:
        admit_scoring(len(scorer.prompt_ids(prompt.text)), lengths, cli_token_limits(loaded.model))
    except InvalidRequest as exc:
        raise CliError(str(exc)) from exc
    results = scorer.score(prompt.text, completions, reference=args.reference, method=args.method)
    if args.json:
        payload = [{"file": str(p), **r.to_dict()} for p, r in zip(args.completion_files, results, strict=True)]
        print(json.dumps({"candidates": payload}, indent=2))
    else:
        for path, result in zip(args.completion_files, results, strict=True):
            print(format_candidate(str(path), result))
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from l2t_core.engines import SamplingParams
    from l2t_core.models import load_models
    from l2t_core.pipeline import ReasoningPipeline
    from l2t_core.request import GenerationRequest

    if not args.question.strip():
        raise CliError("the question is empty")
    beam = {
        "token_budget": args.token_budget,
        "value": args.beam_value,
        "exit_confidence": args.beam_exit_confidence,
    }
    if args.strategy != "beam_prune" and any(v is not None for v in beam.values()):
        raise CliError("--token-budget, --beam-value and --beam-exit-confidence need --strategy beam_prune")
    config = reward_config(args)
    try:
        params = SamplingParams(n=args.n, **flag_values(args, SamplingParams, (*SAMPLING_FLAGS, "seed")))
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    vllm_args = checked_engine_args(args.engine, engine_args_from(args))  # before the model loads
    if args.scorer == "engine":
        if args.scorer_model is not None:
            raise CliError("--scorer engine measures on the generation engine: it takes no --scorer-model")
        try:
            check_measurable(config)
        except InvalidRequest as exc:
            raise CliError(str(exc)) from exc
    here = args.engine == "transformers"
    loaded, scorer = load_models(
        args.model,
        args.scorer_model,
        args.device,
        args.scorer_device,
        generates_here=here,
        scores_here=args.scorer == "torch",
    )
    pipeline = ReasoningPipeline.from_model(
        loaded,
        args.engine,
        config,
        prompt_format=args.prompt_format,
        scorer_model=scorer,
        scoring=args.scorer,
        vllm_args=vllm_args,
    )
    try:
        prompt = pipeline.prompt(args.question)
        searching = beam if args.strategy == "beam_prune" else None
        request = GenerationRequest.build(prompt, params, args.strategy, config, args.reference, searching)
        admit_generation(request, len(prompt.engine_ids), pipeline.token_limits())
        result = pipeline.run(request)
    except ValueError as exc:  # InvalidRequest: settings the search or the strategy rejects
        raise CliError(str(exc)) from exc
    finally:
        pipeline.close()
    if args.json:
        ranked = [
            {"index": r.index, "finish_reason": r.finish_reason, "text": r.score.text, **r.score.to_dict()}
            for r in result.ranked
        ]
        payload = {
            "model": loaded.name,
            "scorer_model": pipeline.scorer_model or loaded.name,
            "compression_penalty_absent": pipeline.compression_absent,
            "strategy": result.strategy,
            "prompt_format": result.prompt_format,
            "candidates": ranked,
            "usage": result.usage.__dict__,
            "timings": result.timings.__dict__,
        }
        print(json.dumps(payload, indent=2))
        return 0
    color = sys.stdout.isatty()
    for rank, r in enumerate(result.ranked):
        title = f"#{rank + 1} (sample {r.index}, {r.finish_reason})"
        print(format_candidate(_bold(title, color), r.score, color))
        print()
    u, t = result.usage, result.timings
    scored_by = f", scored by {pipeline.scorer_model}" if pipeline.scorer_model else ""
    print(
        f"strategy {result.strategy}, prompt format {result.prompt_format}{scored_by}; "
        f"tokens: prompt {u.prompt_tokens}, generated {u.completion_tokens}, scored {u.scoring_tokens}; "
        f"generate {t.generate_ms:.0f} ms, score {t.score_ms:.0f} ms"
    )
    return 0


def cli_token_limits(model: Any) -> TokenLimits:
    """The admission limits a command applies: the model's context and the default work limit."""
    context = context_length(model)
    if context is None:
        raise CliError("the model states no context length (max_position_embeddings)")
    return TokenLimits.for_context(context)


def _bold(text: str, color: bool) -> str:
    return f"\033[1m{text}\033[0m" if color else text


def _signed(value: float | None, text: str, color: bool) -> str:
    if not color or not value:
        return text
    return f"\033[32m{text}\033[0m" if value > 0 else f"\033[31m{text}\033[0m"


def _optional(value: float | None) -> str:
    return f"{value:+.5f}" if value is not None else "-"


def format_candidate(name: str, result: CandidateScore, color: bool = False) -> str:
    """A readable per-episode table for one candidate."""
    split = "tags" if result.tagged else "fallback split"
    lines = [
        f"{name}: answer={result.answer!r} target={result.target!r} score={_optional(result.score)} "
        f"({len(result.episodes)} episodes by {split}, {result.n_tokens} tokens)",
        f"  {'k':>3} {'tokens':>6} {'J_before':>10} {'J_after':>10} {'gain':>10} {'penalty':>10} {'reward':>10}  text",
    ]
    for e in result.episodes:
        text = " ".join(e.text.split())
        text = text if len(text) <= 48 else text[:45] + "..."
        gain = _signed(e.fitting_gain, f"{e.fitting_gain:>+10.3e}", color)
        reward = _signed(e.reward, f"{e.reward:>+10.3e}" if e.reward is not None else f"{'-':>10}", color)
        penalty = f"{e.compression_penalty:>10.3e}" if e.compression_penalty is not None else f"{'-':>10}"
        lines.append(
            f"  {e.index:>3} {e.n_tokens:>6} {e.j_before:>10.3e} {e.j_after:>10.3e} {gain} {penalty} {reward}  {text}"
        )
    if any(e.compression_penalty is None for e in result.episodes):
        lines.append(f"  (penalty and reward '-': {COMPRESSION_ABSENT})")
    return "\n".join(lines)


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    args = (parser or build_parser()).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.handler(args))
    except (CliError, ModelLoadError, EngineError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
