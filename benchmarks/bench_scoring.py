"""Scoring cost, measured side by side in one run: plain forward vs packed L2T scoring vs naive scoring.

N = 8 candidates for one GSM8K prompt, 200–600 tokens, K = 4–12 episodes (mean 8), on one model.
- plain:  a plain forward giving log-probs of the same tokens, no probes, no gradients: the fastest
          of (a) one padded batch of [prompt ‖ candidate], (b) one forward per candidate, and (c) the
          prompt's KV computed once and one forward per candidate with logits for its tokens only.
- packed: the production path (the prompt, every candidate and all their K+1 probes in one forward
          with the split attention, g̃_k for every episode from the same forward).
- naive:  one forward per prefix probe for J, one autograd pass per episode for g̃_k (1 round by
          default: it is the slow reference, ~15× packed, and dominates the run time otherwise).
- plain over the probe tokens too (diagnostic): (c) with each candidate followed by as many extra
          tokens as its K+1 probes take, i.e. the floor for any exact packed path on this hardware.
Methods are timed round-robin (one run each per round, so load on the machine hits all alike) after
one warm-up run of packed and of a plain forward (they share the model, hence its kernels and
allocator); prints medians and the ratios packed_over_plain (against the fastest plain),
packed_over_batched, packed_over_per_candidate, probe_token_floor (plain with probe tokens / fastest
plain) and naive_over_packed. A round is not started when the time it took last would overrun
--budget-s (every method runs at least once): about 4 minutes on 2 idle CPU cores (a loaded machine
gets fewer rounds; the naive round alone can then overrun). The rounds each method got are reported
beside its median, and the load averages of the machine.

    python benchmarks/bench_scoring.py [--json] [--repeats 3] [--naive-repeats 1] [--budget-s 300]
                                       [--model default] [--device auto]
    python benchmarks/bench_scoring.py --random-config qwen2.5-1.5b --dtype bfloat16   # GPU, no download
    python benchmarks/bench_scoring.py --model SHAPE_DIR --random-weights --attention flex,batched
--model is then read for its tokenizer (and, with --random-weights, its config) only. `--attention`
times packed scoring under each named split attention (attention_paths.py).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # this checkout's code

from candidates import benchmark_pool  # noqa: E402
from random_model import BUILT_IN_SHAPES, random_causal_lm, shape_config  # noqa: E402

from l2t_core.episodes import prompt_format  # noqa: E402
from l2t_core.models import load_model, resolve_device  # noqa: E402
from l2t_core.models.kv_cache import cache_kwargs, returned_cache  # noqa: E402
from l2t_core.scoring import L2TScorer  # noqa: E402
from l2t_core.scoring.attention_paths import ATTENTION_PATHS, default_attention  # noqa: E402


def timed_interleaved(
    methods: dict[str, Callable[[], Any]], repeats: dict[str, int], device: torch.device, deadline: float
) -> dict[str, list[float]]:
    """Time every method once per round, round after round, so load on the machine hits all alike.

    After the first round, a round starts only if the time its methods took last fits before `deadline`
    (a `time.perf_counter()` value)."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for round_ in range(max(repeats.values())):
        due = [name for name in methods if round_ < repeats[name]]
        if round_ and time.perf_counter() + sum(times[name][-1] for name in due) > deadline:
            break
        for name in due:
            fn = methods[name]
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description="L2T scoring cost: plain vs packed vs naive")
    parser.add_argument("--model", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--random-config", choices=sorted(BUILT_IN_SHAPES), default=None, help="that shape, random")
    parser.add_argument("--random-weights", action="store_true", help="--model's config with random weights")
    parser.add_argument("--layers", type=int, default=None, help="random models: keep this many decoder layers")
    parser.add_argument(
        "--attention",
        default=None,
        help=f"comma-separated split attentions to time ({', '.join(ATTENTION_PATHS)}; default: the device's); "
        "the first is 'packed', the others 'packed_<name>'",
    )
    parser.add_argument("--candidates", type=int, default=8, help="fewer for a quick run (the first N of the pool)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-repeats", type=int, default=1)
    parser.add_argument("--budget-s", type=float, default=300.0, help="no round is started that would overrun it")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    load_at_start = os.getloadavg()

    random = args.random_config is not None or args.random_weights
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, weights=not random)
    device = resolve_device(args.device)
    tokenizer = loaded.tokenizer
    model = loaded.model
    if random:
        config = shape_config(args.random_config or loaded.path, len(tokenizer), args.layers)
        model = random_causal_lm(config, device, loaded.dtype)
    attentions = args.attention.split(",") if args.attention else [default_attention(device)]
    if unknown := set(attentions) - set(ATTENTION_PATHS):
        parser.error(f"unknown --attention {sorted(unknown)}: use {', '.join(ATTENTION_PATHS)}")
    question, candidates = benchmark_pool(tokenizer, n=args.candidates)
    prompt = prompt_format("episode").render(tokenizer, question["question"]).text
    scorer = L2TScorer(model, tokenizer)
    scorers = {name: L2TScorer(model, tokenizer, attention=name) for name in attentions}  # type: ignore[arg-type]
    prompt_ids = scorer.prompt_ids(prompt)
    sequences = [prompt_ids + tokenizer(c, add_special_tokens=False)["input_ids"] for c in candidates]
    plans = scorer.plan(candidates, None, scorer.config)
    probe_rows = [p.probe_token_count for p in plans]
    # The same token count as the packed row, with a plain causal mask: any exact path computes these.
    with_probe_tokens = [
        seq + (seq[len(prompt_ids) :] * (1 + extra // (len(seq) - len(prompt_ids))))[:extra]
        for seq, extra in zip(sequences, probe_rows, strict=True)
    ]

    def plain_batched() -> None:
        width = max(map(len, sequences))
        ids = torch.full((len(sequences), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, seq in enumerate(sequences):
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        with torch.no_grad():
            model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().log_softmax(-1)

    def plain_sequential() -> None:
        for seq in sequences:
            with torch.no_grad():
                model(input_ids=torch.tensor([seq], device=device)).logits.float().log_softmax(-1)

    def plain_shared_prompt(rows: list[list[int]] = sequences) -> None:
        decoder = model.get_decoder()
        head = model.get_output_embeddings()
        with torch.no_grad():
            prompt_cache = returned_cache(decoder(input_ids=torch.tensor([prompt_ids], device=device), use_cache=True))
            for seq in rows:
                cache = copy.deepcopy(prompt_cache)
                tokens = torch.tensor([seq[len(prompt_ids) :]], device=device)
                hidden = decoder(input_ids=tokens, use_cache=True, **cache_kwargs(decoder, cache))
                head(hidden.last_hidden_state).float().log_softmax(-1)

    methods: dict[str, Callable[[], Any]] = {
        "plain_shared_prompt": plain_shared_prompt,
        "plain_batched": plain_batched,
        "plain_sequential": plain_sequential,
        **{
            "packed" if i == 0 else f"packed_{name}": (lambda packed=packed: packed.score(prompt, candidates))
            for i, (name, packed) in enumerate(scorers.items())
        },
        "naive": lambda: scorer.score(prompt, candidates, method="naive"),
        "plain_with_probe_tokens": lambda: plain_shared_prompt(with_probe_tokens),
    }
    repeats = {name: args.repeats for name in methods}
    repeats["naive"] = args.naive_repeats
    for warm_up in ("plain_shared_prompt", *(m for m in methods if m.startswith("packed"))):
        methods[warm_up]()  # the flex kernel compiles here
    results = timed_interleaved(methods, repeats, device, started + args.budget_s)
    medians = {name: statistics.median(times) for name, times in results.items()}
    plain = min(medians["plain_batched"], medians["plain_sequential"], medians["plain_shared_prompt"])
    tokens = [len(p.token_ids) for p in plans]
    episodes = [len(p.episode_spans) for p in plans]
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "model": args.random_config or args.model,
        "random_weights": random,
        "layers": model.config.num_hidden_layers,
        "dtype": args.dtype,
        "attention": attentions,
        "n_candidates": len(candidates),
        "prompt_tokens": len(prompt_ids),
        "candidate_tokens": tokens,
        "episodes": episodes,
        "probe_tokens": probe_rows,
        "repeats": {name: len(times) for name, times in results.items()},
        "median_seconds": medians,
        "packed_over_plain": medians["packed"] / plain,
        "packed_over_batched": medians["packed"] / medians["plain_batched"],
        "packed_over_per_candidate": medians["packed"] / medians["plain_sequential"],
        "packed_over_batched_by_attention": {
            name: medians["packed" if i == 0 else f"packed_{name}"] / medians["plain_batched"]
            for i, name in enumerate(attentions)
        },
        "probe_token_floor": medians["plain_with_probe_tokens"] / plain,
        "naive_over_packed": medians["naive"] / medians["packed"],
        "wall_seconds": time.perf_counter() - started,
        "load_average_1_5_15_min": {"start": load_at_start, "end": os.getloadavg()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
