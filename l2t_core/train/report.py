"""Compare training runs: curves over steps from each run's `metrics.jsonl` and held-back accuracy from
its `held_back.jsonl` (`--eval-only` records), as one PNG and one markdown table.

    python -m l2t_core.train.report runs/outcome runs/l2t [--baseline runs/initial] --out docs/results/training

Curves are moving averages over `--window` steps (rollout accuracy is noisy: 8 rollouts a step; step
times are moving medians, so a paused step does not bend them). The
table lists every held-back record per run (one per evaluated checkpoint), so accuracy against mean
response tokens can be read at equal steps; paired differences (accuracy and tokens, per question) are
given against the baseline and, with `--versus RUN`, against that run at the same step."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from l2t_core.eval.stats import bootstrap_difference

CURVES = (
    ("accuracy", "rollout accuracy"),
    ("response_tokens", "mean response tokens"),
    ("fitting_gain", "Σ_k ΔI_k per rollout"),
    ("compression_penalty", "Σ_k C_k per rollout"),
    ("kl", "KL to the initial policy"),
    ("step_s", "seconds per step"),
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def moving_median(values: list[float], window: int) -> list[float]:
    """For step times: one paused or disturbed step must not bend the curve for `window` steps."""
    return [statistics.median(values[max(0, i + 1 - window) : i + 1]) for i in range(len(values))]


def step_seconds(record: dict[str, Any]) -> float:
    return float(sum(record.get(k, 0.0) for k in ("rollout_s", "score_s", "update_s", "sync_s")))


def plot(runs: dict[str, list[dict[str, Any]]], path: Path, window: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax, (key, title) in zip(axes.flat, CURVES, strict=True):
        for name, records in runs.items():
            steps = [r["step"] for r in records]
            if key == "step_s":
                ax.plot(steps, moving_median([step_seconds(r) for r in records], window), label=name)
            else:
                ax.plot(steps, moving_average([float(r.get(key, 0.0)) for r in records], window), label=name)
        smoothing = "median" if key == "step_s" else "avg"
        ax.set_title(f"{title} (moving {smoothing} {window})" if key != "kl" else title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _interval(record: dict[str, Any], key: str) -> str:
    if key not in record:
        return "—"
    return f"{100 * record[key]:.1f} [{100 * record[key + '_low']:.1f}, {100 * record[key + '_high']:.1f}]"


def table(evaluations: dict[str, list[dict[str, Any]]]) -> str:
    maj = sorted({k for records in evaluations.values() for r in records for k in r if k.startswith("eval_maj")})
    maj_key = next((k for k in maj if k.endswith("_accuracy")), None)
    lines = [
        "| run | step | engine | held-back questions | greedy % [95% CI] | greedy tokens | greedy episodes | "
        f"{(maj_key or 'eval_maj').removeprefix('eval_').removesuffix('_accuracy')} % [95% CI] | "
        "single-sample % | sampled tokens |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, records in evaluations.items():
        for r in sorted(records, key=lambda r: r["step"]):
            sample = r.get("eval_sample_accuracy")
            sampled_tokens = r.get("eval_sample_response_tokens")
            lines.append(
                f"| {name} | {r['step']} | {r.get('engine', '—')} | {r['eval_questions']} | "
                f"{_interval(r, 'eval_accuracy')} | "
                f"{r['eval_response_tokens']:.1f} | {r['eval_episodes']:.2f} | "
                f"{_interval(r, maj_key) if maj_key else '—'} | "
                f"{'—' if sample is None else f'{100 * sample:.1f}'} | "
                f"{'—' if sampled_tokens is None else f'{sampled_tokens:.1f}'} |"
            )
    return "\n".join(lines)


# Paired columns: (per-question key, header, scale). Accuracy in points; tokens as they are.
PAIRED = (
    ("eval_correct", "greedy (points)", 100.0),
    ("eval_maj*_correct", "majority (points)", 100.0),
    ("eval_tokens_each", "greedy tokens", 1.0),
    ("eval_sample_tokens_each", "sampled tokens", 1.0),
)


def _per_question(record: dict[str, Any], key: str) -> list[float] | None:
    if "*" in key:
        head, tail = key.split("*")
        key = next((k for k in record if k.startswith(head) and k.endswith(tail)), key)
    values = record.get(key)
    return values or None


def _counterpart(records: list[dict[str, Any]], step: int | None) -> dict[str, Any] | None:
    """The record to pair with: the one at `step` (the latest such), or with `step` None the latest one;
    only records that kept per-question results."""
    kept = [r for r in records if "eval_correct" in r and (step is None or r["step"] == step)]
    return kept[-1] if kept else None


def paired(evaluations: dict[str, list[dict[str, Any]]], against: str, same_step: bool) -> str:
    """Each run's records minus `against`'s, paired over the same questions (95% bootstrap CIs): against
    the record at the same step (`same_step`: run against run) or against its latest record (the initial
    model). Only records that kept per-question results take part."""
    lines = []
    for name, records in evaluations.items():
        if name == against:
            continue
        for r in sorted(records, key=lambda r: r["step"]):
            base = _counterpart(evaluations.get(against, []), r["step"] if same_step else None)
            if base is None or "eval_correct" not in r or len(r["eval_correct"]) != len(base["eval_correct"]):
                continue
            cells = []
            for key, _, scale in PAIRED:
                mine, theirs = _per_question(r, key), _per_question(base, key)
                if mine is None or theirs is None or len(mine) != len(theirs):
                    cells.append("—")
                    continue
                d = bootstrap_difference(mine, theirs)
                cells.append(f"{scale * d.mean:+.1f} [{scale * d.low:+.1f}, {scale * d.high:+.1f}]")
            lines.append(f"| {name} | {r['step']} | {' | '.join(cells)} |")
    if not lines:
        return ""
    where = "at the same step" if same_step else "(its latest evaluation)"
    header = " | ".join(title for _, title, _ in PAIRED)
    return "\n".join(
        [
            f"Paired differences against {against} {where}, 95% bootstrap CI over questions:",
            "",
            f"| run | step | {header} |",
            "|---|---|" + "---|" * len(PAIRED),
            *lines,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m l2t_core.train.report", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="run output folders")
    parser.add_argument("--baseline", type=Path, help="a folder with held_back.jsonl of the initial model")
    parser.add_argument("--versus", help="a run the others are paired against at the same steps (e.g. outcome)")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--max-step", type=int, help="curves end here (runs compared at equal steps)")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.png and OUT.md")
    args = parser.parse_args(argv)
    runs = {folder.name: read_jsonl(folder / "metrics.jsonl") for folder in args.runs}
    if args.max_step is not None:
        runs = {name: [r for r in records if r["step"] <= args.max_step] for name, records in runs.items()}
    missing = [name for name, records in runs.items() if not records]
    if missing:
        parser.error(f"no metrics.jsonl in: {', '.join(missing)}")
    evaluations = {}
    if args.baseline is not None:
        evaluations[args.baseline.name] = read_jsonl(args.baseline / "held_back.jsonl")
    evaluations |= {folder.name: read_jsonl(folder / "held_back.jsonl") for folder in args.runs}
    png = plot(runs, args.out.with_suffix(".png"), args.window)
    steps = ", ".join(f"{name}: {records[-1]['step']}" for name, records in runs.items())
    if args.versus is not None and args.versus not in runs:
        parser.error(f"--versus {args.versus}: not one of the runs ({', '.join(runs)})")
    comparisons = [paired(evaluations, args.baseline.name, same_step=False) if args.baseline is not None else ""]
    if args.versus is not None:
        comparisons.append(paired(evaluations, args.versus, same_step=True))
    text = f"# Training runs\n\nSteps logged: {steps}.\n\n![curves]({png.name})\n\n{table(evaluations)}\n"
    for comparison in comparisons:
        if comparison:
            text += f"\n{comparison}\n"
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
