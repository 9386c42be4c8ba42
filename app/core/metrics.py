"""Prometheus metrics, one registry per app so tests and several apps in one process do not collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
SCORING_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
EPISODE_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 32)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("l2t_requests", "HTTP requests", ["route", "status"], registry=self.registry)
        self.latency = Histogram(
            "l2t_request_latency_seconds", "request latency", ["route"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.stage = Histogram(
            "l2t_stage_seconds", "time per pipeline stage", ["stage"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.generated_tokens = Counter("l2t_generated_tokens", "tokens generated", registry=self.registry)
        self.scored_tokens = Counter("l2t_scored_tokens", "tokens run through the scorer", registry=self.registry)
        self.candidates = Counter(
            "l2t_candidates",
            "candidates returned by /generate, /score and the OpenAI routes, by whether the model tagged its "
            "episodes (tag rate = tagged=true / all)",
            ["tagged"],
            registry=self.registry,
        )
        self.scoring_batch = Histogram(
            "l2t_scoring_batch_jobs",
            "requests scored together in one scorer call (cross-request scoring)",
            buckets=SCORING_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge("l2t_queue_depth", "requests admitted and not finished", registry=self.registry)
        self.rejected = Counter(
            "l2t_requests_rejected", "requests refused because the queue was full", registry=self.registry
        )
        self.cancelled = Counter(
            "l2t_requests_cancelled", "requests cancelled (disconnect or timeout)", ["reason"], registry=self.registry
        )

        # The series serving dashboards read, named as vLLM's (`vllm:…`) with our prefix, so one dashboard
        # reads both and an in-process vLLM's own series never collide with ours.
        self.time_to_first_token = Histogram(
            "l2t:time_to_first_token_seconds",
            "from admission to the first token sent (streamed requests: the only ones whose first token reaches "
            "the client before the end)",
            ["model_name"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.e2e_latency = Histogram(
            "l2t:e2e_request_latency_seconds",
            "from admission to the finished result (generation, scoring and choice)",
            ["model_name"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "l2t:prompt_tokens", "prompt tokens of generation requests", ["model_name"], registry=self.registry
        )
        self.generation_tokens = Counter(
            "l2t:generation_tokens",
            "tokens generated (every candidate, beam-prune's pruned paths and probes too)",
            ["model_name"],
            registry=self.registry,
        )
        self.episodes = Histogram(
            "l2t_episodes_per_candidate",
            "episodes of each returned candidate",
            buckets=EPISODE_BUCKETS,
            registry=self.registry,
        )
        self.chosen_is_first = Counter(
            "l2t_chosen_answer_is_first",
            "generation requests by whether the chosen candidate's answer is the first sample's (agree=false: the "
            "strategy changed the answer a single sample would give)",
            ["strategy", "agree"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
