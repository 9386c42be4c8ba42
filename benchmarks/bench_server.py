"""Server overhead, measured side by side in one run on the embedded model (loopback only).

1. Throughput of POST /generate at concurrency 1, 4 and 16 against direct engine calls (no HTTP,
   no scoring) with the same prompts, n and max_tokens: `server_over_engine` = server requests/s ÷
   engine requests/s. The server does more work (it scores every candidate), so this ratio is the
   honest end-to-end overhead, scoring included. Two servers run on the same model, one after the
   other at each concurrency: the served one, whose scoring queue scores requests that finish
   generation together in one scorer call, and one that scores each request alone
   (`L2T_SCORING_MAX_JOBS=1`, as before the queue): `alone_over_engine`. Each row also gives the
   median scoring share of its requests and the mean number of requests per scorer call.
2. Share of request time spent scoring at n = 8 and 256 tokens (sequential requests):
   score_ms / (generate_ms + score_ms) from the server's own timings.
3. What one scorer call for many requests saves, without generation or HTTP in the way: the
   candidates of 16 requests (sampled once), scored request by request and all in one
   `score_many` call, alternately for --scoring-rounds rounds; medians and `alone_over_together`.
The throughput sweep uses a lighter load by default (n = 4, 64 tokens) so that concurrency 16 fits
in minutes on 2 CPU cores; pass --n/--max-tokens to change it. The load averages of the machine at
the start and end are reported (the numbers are only comparable within one run on a shared machine).

    python benchmarks/bench_server.py [--json] [--n 4] [--max-tokens 64] [--concurrency 1 4 16]
                                      [--sections throughput share scoring] [--scoring-rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.background import BackgroundServer  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.metrics import Metrics  # noqa: E402
from app.core.runtime import Runtime  # noqa: E402
from app.main import create_app  # noqa: E402
from l2t_core.engines import SamplingParams  # noqa: E402
from l2t_core.models import load_model  # noqa: E402
from l2t_core.scoring import L2TScorer, ScoringJob  # noqa: E402

SECTIONS = ("throughput", "share", "scoring")
QUESTIONS = [
    f"Tom has {a} marbles and wins {b} more. How many marbles does he have now?"
    for a, b in [(12, 7), (23, 9), (5, 17), (31, 4), (8, 26), (14, 14), (40, 2), (3, 29)]
]


def engine_throughput(runtime: Runtime, concurrency: int, requests: int, params: SamplingParams) -> float:
    pipeline = runtime.require_pipeline()
    prompts = [pipeline.prompt(QUESTIONS[i % len(QUESTIONS)]) for i in range(requests)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(lambda p: pipeline.sample(p, params, threading.Event()), prompts))
    return requests / (time.perf_counter() - started)


def server_throughput(url: str, concurrency: int, requests: int, n: int, max_tokens: int) -> tuple[float, list[dict]]:
    """Requests/s of POST /generate with `concurrency` clients, and the responses."""

    async def run() -> list[dict]:
        limit = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=3600) as client:

            async def one(i: int) -> dict:
                async with limit:
                    body = {"prompt": QUESTIONS[i % len(QUESTIONS)], "n": n, "max_tokens": max_tokens}
                    response = await client.post(f"{url}/generate", json=body)
                    response.raise_for_status()
                    return dict(response.json())

            return await asyncio.gather(*(one(i) for i in range(requests)))

    started = time.perf_counter()
    results = asyncio.run(run())
    return requests / (time.perf_counter() - started), results


def scoring_share(results: list[dict]) -> float:
    """Median share of request time spent scoring (queue wait included), from the server's own timings."""
    return statistics.median(
        r["timings"]["score_ms"] / (r["timings"]["generate_ms"] + r["timings"]["score_ms"]) for r in results
    )


def scorer_calls(metrics: Metrics) -> tuple[float, float]:
    """(scorer calls, requests scored) so far, from the scoring queue's batch-size histogram."""
    samples = {s.name: s.value for m in metrics.scoring_batch.collect() for s in m.samples}
    return samples["l2t_scoring_batch_jobs_count"], samples["l2t_scoring_batch_jobs_sum"]


def server_row(server: BackgroundServer, runtime: Runtime, concurrency: int, requests: int, args: Any) -> dict:
    calls_before, jobs_before = scorer_calls(runtime.metrics)
    rps, results = server_throughput(server.url, concurrency, requests, args.n, args.max_tokens)
    calls_after, jobs_after = scorer_calls(runtime.metrics)
    jobs_per_call = (jobs_after - jobs_before) / (calls_after - calls_before)
    return {"rps": rps, "scoring_share": scoring_share(results), "requests_per_scorer_call": jobs_per_call}


def scoring_calls(runtime: Runtime, loaded: Any, requests: int, rounds: int, params: SamplingParams) -> dict:
    """Seconds to score `requests` requests' candidates one request per call and all in one call."""
    pipeline = runtime.require_pipeline()
    prompts = [pipeline.prompt(QUESTIONS[i % len(QUESTIONS)]) for i in range(requests)]
    with ThreadPoolExecutor(max_workers=requests) as pool:
        pools = list(pool.map(lambda p: pipeline.sample(p, params, threading.Event()), prompts))
    jobs = [ScoringJob(p.text, sampled.texts) for p, sampled in zip(prompts, pools, strict=True)]
    scorer = L2TScorer(loaded.model, loaded.tokenizer)
    times: dict[str, list[float]] = {"alone": [], "together": []}
    for _ in range(rounds):
        for name, work in (
            ("alone", lambda: [scorer.score_many([j]) for j in jobs]),
            ("together", lambda: scorer.score_many(jobs)),
        ):
            started = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {
        "requests": requests,
        "candidates": sum(len(j.completions) for j in jobs),
        "rounds": rounds,
        "seconds": times,
        "median_alone_s": medians["alone"],
        "median_together_s": medians["together"],
        "alone_over_together": medians["alone"] / medians["together"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="l2t server throughput and scoring share")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--share-n", type=int, default=8)
    parser.add_argument("--share-max-tokens", type=int, default=256)
    parser.add_argument("--share-requests", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--scoring-requests", type=int, default=16)
    parser.add_argument("--scoring-rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    load_at_start = os.getloadavg()
    loaded = load_model()
    runtime = Runtime(Settings(max_queue=64))
    runtime.start(loaded)
    alone = Runtime(Settings(max_queue=64, scoring_max_jobs=1))  # each request scored alone
    alone.start(loaded)
    params = SamplingParams(n=args.n, max_tokens=args.max_tokens, temperature=0.8, top_p=0.95)
    rows = []
    with BackgroundServer(create_app(runtime=runtime)) as server, BackgroundServer(create_app(runtime=alone)) as other:
        for concurrency in args.concurrency if "throughput" in args.sections else []:
            requests = max(2, concurrency)
            engine_rps = engine_throughput(runtime, concurrency, requests, params)
            scored_alone = server_row(other, alone, concurrency, requests, args)
            queued = server_row(server, runtime, concurrency, requests, args)
            rows.append(
                {
                    "concurrency": concurrency,
                    "requests": requests,
                    "engine_rps": engine_rps,
                    "server_rps": queued["rps"],
                    "server_over_engine": queued["rps"] / engine_rps,
                    "scoring_share": queued["scoring_share"],
                    "requests_per_scorer_call": queued["requests_per_scorer_call"],
                    "alone_rps": scored_alone["rps"],
                    "alone_over_engine": scored_alone["rps"] / engine_rps,
                    "alone_scoring_share": scored_alone["scoring_share"],
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
        share: dict[str, Any] = {}
        if "share" in args.sections:
            _, results = server_throughput(server.url, 1, args.share_requests, args.share_n, args.share_max_tokens)
            shares = [
                r["timings"]["score_ms"] / (r["timings"]["generate_ms"] + r["timings"]["score_ms"]) for r in results
            ]
            completion = [r["usage"]["completion_tokens"] / args.share_n for r in results]
            share = {
                "n": args.share_n,
                "max_tokens": args.share_max_tokens,
                "requests": args.share_requests,
                "mean_tokens_per_candidate": statistics.mean(completion),
                "median_share": statistics.median(shares),
                "shares": shares,
            }
        calls = (
            scoring_calls(runtime, loaded, args.scoring_requests, args.scoring_rounds, params)
            if "scoring" in args.sections
            else {}
        )
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "model": "default (SmolLM2-135M-Instruct, float32, transformers engine)",
        "n": args.n,
        "max_tokens": args.max_tokens,
        "throughput": rows,
        "scoring_share": share,
        "scoring_calls": calls,
        "load_average_1_5_15_min": {"start": load_at_start, "end": os.getloadavg()},
    }
    print(json.dumps(report, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))


if __name__ == "__main__":
    main()
