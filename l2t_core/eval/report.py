"""Writing a run's results: results.json (everything), results.md (tables), accuracy_vs_tokens.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from l2t_core.atomic import atomic_write_text


def write_report(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "results.md"]
    atomic_write_text(written[0], json.dumps(results, indent=2, ensure_ascii=False))
    atomic_write_text(written[1], markdown(results))
    if any("methods" in suite for suite in results["suites"].values()):
        written.append(plot(results, out / "accuracy_vs_tokens.png"))
    return written


def _pct(estimate: dict[str, Any]) -> str:
    low, high = estimate["ci95"]
    return f"{100 * estimate['mean']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def signed_points(estimate: dict[str, Any]) -> str:
    """A difference in points with its interval (an `Estimate.to_dict()`): +1.5 [-1.0, +4.5]."""
    low, high = estimate["ci95"]
    return f"{100 * estimate['mean']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    scored_by = f", scored by `{s['scorer_model_name']}`" if s.get("scorer_model") else ""
    lines = [
        f"# Evaluation: {', '.join(results['suites'])}",
        "",
        f"model `{s['model_name']}`{scored_by} on {s['device']}, engine {s['engine']}, T={s['temperature']}, "
        f"top-p {s['top_p']}, max {s['max_tokens']} tokens, split `{s['split']}`, seed {s['seed']}; "
        f"wall {results.get('wall_s', 0):.0f} s. Accuracy in % with 95% bootstrap CI over problems.",
        f"Prompt format `{s.get('prompt_format')}`; J's answer suffix scored as a "
        f"{s.get('reward', {}).get('suffix_probability', 'token')} probability.",
        "",
    ]
    if results.get("command"):
        lines += ["Reproduce (pools and scores are cached, so a rerun reprints these numbers):", ""]
        lines += [f"    {results['command']}", ""]
    for name, suite in results["suites"].items():
        lines += _verifier_md(name, suite) if "top1" in suite else _generation_md(name, suite)
    return "\n".join(lines) + "\n"


def _generation_md(name: str, suite: dict[str, Any]) -> list[str]:
    pool = suite["pool"]
    ns = list(next(iter(suite["methods"].values())).keys())
    lines = [
        f"## {name} ({suite['problems']} problems, {suite['setting']})",
        "",
        f"Pool: tag rate {pool['tag_rate']:.2f}, answered {pool['answered_rate']:.2f}, finished "
        f"{pool['finished_rate']:.2f}, {pool['mean_episodes']:.1f} episodes and {pool['mean_tokens']:.0f} "
        f"tokens per candidate; generation {pool['generate_s_per_problem']:.1f} s and scoring "
        f"{pool['score_s_per_problem']:.1f} s per problem (whole pool).",
        "",
        "| method | " + " | ".join(f"N={n}" for n in ns) + " | at max N: generated / scored tokens, scoring s |",
        "|---|" + "---|" * (len(ns) + 1),
    ]
    for method, by_n in suite["methods"].items():
        cells = [_pct(by_n[n]["accuracy"]) for n in ns]
        top = by_n[ns[-1]]
        seconds = f", {top['scoring_s']:.1f} s" if top.get("scoring_s") is not None else ""
        cost = f"{top['tokens']:.0f} / {top.get('scored_tokens', 0):.0f}{seconds}"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {cost} |")
    lines += ["", f"Paired differences at N={suite['compare_n']} (points):", ""]
    lines += [f"- {pair}: {signed_points(est)}" for pair, est in suite["comparisons"].items()]
    if suite.get("ablation_beta0"):
        lines += ["", f"Ablation β = 0 at N={suite['compare_n']}:", ""]
        lines += [f"- {m}: {_pct(v['accuracy'])}" for m, v in suite["ablation_beta0"].items()]
    if suite.get("by_level"):
        methods = list(suite["methods"])
        lines += ["", f"By level at N={suite['compare_n']} (accuracy %):", ""]
        lines += ["| level | problems | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
        for level, row in suite["by_level"].items():
            lines.append(
                f"| {level} | {row['problems']} | " + " | ".join(f"{100 * row[m]:.1f}" for m in methods) + " |"
            )
    if suite.get("beam_prune"):
        lines += ["", "Beam-prune (live search, same prompts):", ""]
        compared = next(iter(suite["beam_prune"].values())).get("best_of_n", {}).get("method", "best-of-N")
        lines += [
            f"| budget | width | accuracy | tokens/question | vs {compared}@width tokens | minus {compared} (pts) "
            "| forced | exits/search |"
        ]
        lines += ["|---|---|---|---|---|---|---|---|"]
        for budget, b in suite["beam_prune"].items():
            ratio = f"{b['token_ratio']:.2f}" if "token_ratio" in b else "-"
            diff = signed_points(b["minus_best_of_n"]) if "minus_best_of_n" in b else "-"
            lines.append(
                f"| {budget} | {b['width']} | {_pct(b['accuracy'])} | {b['tokens']:.0f} | {ratio} | {diff} | "
                f"{b['forced_rate']:.2f} | {b.get('mean_exited', 0.0):.2f} |"
            )
        for budget, b in suite["beam_prune"].items():
            if "against_full_pool" in b:
                full = b["against_full_pool"]
                lines.append(
                    f"\nBudget {budget} against {full['method']}@{full['n']} (paired): "
                    f"{signed_points(full['minus'])} points "
                    f"with {full['token_ratio']:.2f} of its {full['tokens']:.0f} tokens per question."
                )
    if suite.get("tuning"):
        lines += ["", f"Tuning (top 10 of {len(suite['tuning'])}, by weighted_vote at N={suite['compare_n']}):", ""]
        lines += ["| setting | weighted_vote | best_of_n |", "|---|---|---|"]
        lines += [
            f"| {r['label']} | {100 * r['weighted_vote']:.1f} | {100 * r['best_of_n']:.1f} |"
            for r in suite["tuning"][:10]
        ]
    for key, title in (("posterior_tuning", "posterior_vote settings"), ("adaptive_tuning", "adaptive settings")):
        if suite.get(key):
            lines += ["", f"{title} at N={suite['compare_n']}:", ""]
            lines += [
                "| setting | accuracy | − majority (paired) | − loglik (paired) | generated tokens | samples |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {_setting_label(r['setting'])} | {_pct(r['accuracy'])} | "
                f"{signed_points(r['minus_majority']) if 'minus_majority' in r else '-'} | "
                f"{signed_points(r['minus_loglik']) if 'minus_loglik' in r else '-'} | "
                f"{r['tokens']:.0f} | {r['samples']:.2f} |"
                for r in suite[key]
            ]
    return [*lines, ""]


def _setting_label(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in setting.items())


def _verifier_md(name: str, suite: dict[str, Any]) -> list[str]:
    lines = [
        f"## {name} ({suite['pools']} pools of {suite['pool_size']}: {suite['corruptions']})",
        "",
        "Top-1: how often the scorer ranks the gold solution first.",
        "",
        "| scorer | top-1 % | minus loglik (pts) |",
        "|---|---|---|",
    ]
    for scorer, est in suite["top1"].items():
        diff = suite["top1_minus_loglik"].get(scorer)
        lines.append(f"| {scorer} | {_pct(est)} | {signed_points(diff) if diff else '-'} |")
    for kind, by_name in suite["first_error"].items():
        lines += ["", f"First-error localisation, `{kind}` corruptions (lowest episode = first wrong step, %):", ""]
        lines += ["| method | hit rate % |", "|---|---|"]
        lines += [f"| {method} | {_pct(est)} |" for method, est in by_name.items()]
    return [*lines, ""]


def plot(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = {name: s for name, s in results["suites"].items() if "methods" in s}
    fig, axes = plt.subplots(1, len(suites), figsize=(6.5 * len(suites), 4.8), squeeze=False)
    for axis, (name, suite) in zip(axes[0], suites.items(), strict=True):
        for method, by_n in suite["methods"].items():
            xs = [v["tokens"] for v in by_n.values()]
            ys = [100 * v["accuracy"]["mean"] for v in by_n.values()]
            low = [100 * (v["accuracy"]["mean"] - v["accuracy"]["ci95"][0]) for v in by_n.values()]
            high = [100 * (v["accuracy"]["ci95"][1] - v["accuracy"]["mean"]) for v in by_n.values()]
            axis.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=2, label=method, alpha=0.85)
        for budget, b in suite.get("beam_prune", {}).items():
            est = b["accuracy"]
            axis.errorbar(
                [b["tokens"]],
                [100 * est["mean"]],
                yerr=[[100 * (est["mean"] - est["ci95"][0])], [100 * (est["ci95"][1] - est["mean"])]],
                marker="*",
                markersize=12,
                capsize=2,
                linestyle="none",
                label=f"beam_prune {budget}",
            )
        axis.set_xscale("log", base=2)
        axis.set_xlabel("generated tokens per question (N = 1, 2, 4, … along each line)")
        axis.set_ylabel("accuracy % (95% CI)")
        axis.set_title(f"{name} ({suite['problems']} problems)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
