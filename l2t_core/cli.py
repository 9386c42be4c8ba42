"""The `l2t` command. Subcommands register themselves here; each one validates its input and turns
library errors into a one-line `error: …` and exit status 2 instead of a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

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


def format_candidate(name: str, result: CandidateScore) -> str:
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
        lines.append(
            f"  {e.index:>3} {e.n_tokens:>6} {e.j_before:>10.3e} {e.j_after:>10.3e} {e.fitting_gain:>+10.3e} "
            f"{e.compression_penalty:>10.3e} {e.reward:>+10.3e}  {text}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.handler(args))
    except (CliError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
