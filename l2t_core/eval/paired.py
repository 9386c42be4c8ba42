"""`l2t pair`: the paired difference of two rows of evaluation results over the problems they share.

One `l2t eval` run pairs its own methods; two runs (another suffix probability, scorer model or reward
setting over the same cached pools) can only be compared honestly problem by problem. Each run keeps its
per-problem outcomes at its compare N (`per_problem` in results.json); this matches them by problem id.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from l2t_core.eval.problems import DataError
from l2t_core.eval.report import signed_points
from l2t_core.eval.stats import Estimate, bootstrap_difference, bootstrap_mean

BEAM_ROW = "beam_prune@"  # a beam-prune row is named by its budget: beam_prune@240


@dataclass(frozen=True)
class PairedRows:
    first: Estimate
    second: Estimate
    difference: Estimate  # first − second over the shared problems

    def describe(self, first: str, second: str) -> str:
        return (
            f"{first}: {self.first.percent()}\n{second}: {self.second.percent()}\n"
            f"difference: {signed_points(self.difference.to_dict())} points over {self.difference.n} shared problems"
        )


def read_results(path: Path) -> dict[str, Any]:
    """results.json, given as the file or the report folder holding it."""
    file = path / "results.json" if path.is_dir() else path
    try:
        results: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read evaluation results {file}: {exc}") from exc
    return results


def per_problem(results: dict[str, Any], suite: str, row: str) -> dict[str, float]:
    """Problem id → 1.0/0.0 for one row of one suite: a method at compare N, or `beam_prune@<budget>`."""
    suites = results.get("suites", {})
    if suite not in suites:
        raise DataError(f"no suite {suite!r} in these results (have: {', '.join(suites) or 'none'})")
    found = suites[suite]
    if row.startswith(BEAM_ROW):
        outcome = found.get("beam_prune", {}).get(row.removeprefix(BEAM_ROW), {}).get("per_problem")
        ids, correct = (outcome["ids"], outcome["correct"]) if outcome else (None, None)
    else:
        table = found.get("per_problem")
        ids = table["ids"] if table else None
        correct = table["correct"].get(row) if table else None
    if ids is None or correct is None:
        raise DataError(
            f"no per-problem outcomes for {row!r} in suite {suite!r} (results written before they were kept, "
            "or a row that was not run; a rerun of its reproduce line reads the cache and adds them)"
        )
    return dict(zip(ids, correct, strict=True))


def pair_rows(first: dict[str, float], second: dict[str, float], seed: int = 0) -> PairedRows:
    shared = [problem for problem in first if problem in second]
    if not shared:
        raise DataError("the two rows share no problems")
    a, b = [first[p] for p in shared], [second[p] for p in shared]
    return PairedRows(bootstrap_mean(a, seed), bootstrap_mean(b, seed), bootstrap_difference(a, b, seed))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("first", type=Path, help="results.json (or its report folder) of the first run")
    parser.add_argument("second", type=Path, help="results.json (or its report folder) of the second run")
    parser.add_argument("--suite", default="arithmetic", help="the first run's suite (arithmetic; a jsonl: its stem)")
    parser.add_argument("--against-suite", default=None, help="the second run's suite (default: the same as --suite)")
    parser.add_argument("--row", required=True, help="the first run's row: a method, or beam_prune@<budget>")
    parser.add_argument("--against", default=None, help="the second run's row (default: the same as --row)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def run_pair(args: argparse.Namespace) -> int:
    against = args.against or args.row
    first = per_problem(read_results(args.first), args.suite, args.row)
    second = per_problem(read_results(args.second), args.against_suite or args.suite, against)
    paired = pair_rows(first, second, args.seed)
    print(paired.describe(f"{args.row} ({args.first})", f"{against} ({args.second})"))
    return 0
