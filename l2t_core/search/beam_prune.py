"""Beam-prune: episode-level search that spends fewer tokens than best-of-N (DESIGN §4).

`width` paths start from the prompt. Each round every live path advances to the end of its next
episode (the engine stops at `</episode_` and we write the tag's number; the model itself opens the
next episode or writes its final answer — forcing the next opening tag made SmolLM2 write episode
after episode and never answer, docs/strategies.md), the new prefixes are scored with the L2T
reward, and the weakest live paths are pruned (optionally the survivors are copied into the freed
slots). Paths finish when the model ends its text (EOS). The search stops when no path is live, after
`max_episodes` rounds, or when the token budget cannot pay for another step.

An unfinished prefix has no answer of its own, so J cannot aim at "its" answer. Each round a short
greedy answer probe (the scorer's probe text, then up to `answer_tokens` tokens) decodes the answer
the prefix currently points to; `partial_target="probe"` aims each prefix at its own probe answer,
`"consensus"` aims every prefix at the most common probe answer (chosen by measurement: docs/strategies.md).

What a live path is kept by (`value`): `"reward"`, the paper's path score aimed as above; or `"pool"`,
its probe probability, after its last episode, of the answers the *rest* of the pool supports (the
leave-one-out posterior over the finished answers and the other live paths' probe answers, from
multi-target J in the same scoring forward), so no path judges itself (PAV: the prover must differ
from the policy). `exit_confidence` adds a DEER-like per-path exit: a live path whose probe answer has
J ≥ that value after its episode is closed with it (`…probe answer}` appended, as the probe decoded it)
and finishes with reason `exit`; it spends no more steps.

Only finished paths are answers: ended by the model (`stop`) or by the exit rule (`exit`). If none
finished within the budget, the best live path is closed with its probe answer and reported with
finish reason `forced` (never silently as if finished).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from l2t_core.answers import extract_answer
from l2t_core.engines import Cancelled, Generation, SamplingParams
from l2t_core.episodes.prompt import FIRST_EPISODE, RenderedPrompt
from l2t_core.errors import InvalidRequest
from l2t_core.result import PipelineResult, RankedCandidate, ScoredPool, Timings, Usage
from l2t_core.reward import RewardConfig, choose_targets
from l2t_core.scoring import CandidateScore
from l2t_core.search.posterior import MAX_ANSWER_PROBES, PROGRESS_SETTINGS, answer_probability, pool_value

if TYPE_CHECKING:
    from l2t_core.request import GenerationRequest

CLOSE = "</episode_"
PARTIAL_TARGETS = ("probe", "consensus")
VALUES = ("reward", "pool")  # what live paths are pruned by


@dataclass(frozen=True)
class BeamPruneConfig:
    width: int = 8  # paths at the start
    keep_ratio: float = 0.5  # fraction of live paths kept after each scored round
    min_live: int = 2  # never prune below this many live paths
    expand: bool = False  # refill pruned slots with copies of the best survivors
    episode_tokens: int = 64  # cap on one episode; a longer one is closed where it stopped
    max_episodes: int = 8  # rounds
    token_budget: int | None = None  # generated tokens for the whole search, answer probes included
    answer_tokens: int = 12  # greedy answer probe length
    partial_target: str = "probe"
    value: str = "reward"  # prune by the path's L2T score ("reward") or its mass on the rest's answers ("pool")
    exit_confidence: float | None = None  # a live path exits with its probe answer once J of it reaches this
    final_strategy: str = "weighted_vote"  # how finished paths are ranked

    request_field: ClassVar[str] = "beam"  # where a request carries these settings

    def __post_init__(self) -> None:
        if self.width < 1 or self.min_live < 1:
            raise InvalidRequest("width and min_live must be >= 1")
        if not 0 < self.keep_ratio <= 1:
            raise InvalidRequest(f"keep_ratio must be in (0, 1], got {self.keep_ratio}")
        if self.episode_tokens < 1 or self.max_episodes < 1 or self.answer_tokens < 1:
            raise InvalidRequest("episode_tokens, max_episodes and answer_tokens must be >= 1")
        if self.token_budget is not None and self.token_budget < self.episode_tokens + self.answer_tokens:
            raise InvalidRequest(
                f"token_budget must pay for one step: at least episode_tokens + answer_tokens "
                f"({self.episode_tokens + self.answer_tokens})"
            )
        if self.partial_target not in PARTIAL_TARGETS:
            raise InvalidRequest(f"partial_target must be one of {PARTIAL_TARGETS}, got {self.partial_target!r}")
        if self.value not in VALUES:
            raise InvalidRequest(f"value must be one of {VALUES}, got {self.value!r}")
        if self.exit_confidence is not None and not 0 < self.exit_confidence <= 1:
            raise InvalidRequest(f"exit_confidence must be in (0, 1], got {self.exit_confidence}")

    @property
    def probes_pool(self) -> bool:
        """Whether scoring measures multi-target J over the pool's answers (pool value or the exit rule)."""
        return self.value == "pool" or self.exit_confidence is not None

    def work(self, sampling: SamplingParams, prompt_tokens: int) -> int:
        """An upper bound on the tokens the model reads and writes in this search (l2t_core/admission.py):
        every round, each of at most `width` live paths is read again from the prompt to its end, twice
        (its step and its answer probe), and no path is longer than its episodes and probe; plus every
        generated token. The engine's prefix cache may make the re-reads cheaper; the bound does not
        count on it."""
        longest_path = self.max_episodes * self.episode_tokens + self.answer_tokens
        if self.token_budget is not None:
            longest_path = min(longest_path, self.token_budget)
        rereads = 2 * self.max_episodes * self.width * (prompt_tokens + longest_path)
        generated = self.token_budget if self.token_budget is not None else self.width * longest_path
        return rereads + generated

    @classmethod
    def from_request(cls, sampling: SamplingParams, options: Mapping[str, Any]) -> BeamPruneConfig:
        """The search a sampling request asks for: n paths and, unless `token_budget` is given, the budget
        best-of-N would spend (n × max_tokens); an episode cap larger than the budget leaves room for the
        answer probe. This is the one place the budget rule lives. Unknown option names are an error."""
        width, max_tokens = sampling.n, sampling.max_tokens
        given = {k: v for k, v in options.items() if v is not None}
        known = {f.name for f in fields(cls)} - {"width"}
        unknown = sorted(set(given) - known)
        if unknown:
            raise InvalidRequest(f"unknown beam option(s) {unknown}: use {sorted(known)}", param="beam")
        least = given.get("answer_tokens", cls.answer_tokens) + 1  # one episode token and the answer probe
        budget = given.pop("token_budget", None) or max(width * max_tokens, least)
        episode_tokens = given.pop("episode_tokens", cls.episode_tokens)
        answer_tokens = given.get("answer_tokens", cls.answer_tokens)
        episode_tokens = min(episode_tokens, max(1, budget - answer_tokens))
        return cls(width=width, token_budget=budget, episode_tokens=episode_tokens, **given)


@dataclass
class SearchPath:
    text: str  # the completion so far; a live path ends after a closed episode (or a capped step)
    closed: int = 0  # episodes closed so far
    n_tokens: int = 0  # tokens generated for this path (its own steps only)
    finish_reason: str | None = None  # None while live; "stop" (EOS) | "exit" (confident probe) | "forced"
    probe_answer: str | None = None


@dataclass(frozen=True)
class BeamPruneResult:
    ranked: list[tuple[SearchPath, CandidateScore]]  # finished (or forced) paths, best first
    generated_tokens: int  # every decoded token: all steps of all paths, pruned ones too, and answer probes
    probe_tokens: int  # the answer-probe share of generated_tokens
    scoring_tokens: int
    rounds: int
    pruned: int  # paths dropped by pruning or by the budget while others went on
    exited: int  # paths closed early by the exit rule (finish reason "exit")
    unfinished: int  # live paths when the search stopped (never returned, unless one is forced)
    generate_s: float
    score_s: float


@dataclass
class _Ledger:
    generated: int = 0
    probe: int = 0
    scored: int = 0
    pruned: int = 0
    exited: int = 0
    generate_s: float = 0.0
    score_s: float = 0.0
    rounds: int = 0
    done: list[tuple[SearchPath, CandidateScore]] = field(default_factory=list)


class SearchStages(Protocol):
    """What beam-prune needs of the pipeline: a round's steps generated together, prefixes scored through
    the pipeline's scoring path (the server's cross-request queue), and the ranking of finished paths."""

    @property
    def reward_config(self) -> RewardConfig: ...

    def generate_many(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, cancel: threading.Event | None
    ) -> list[Generation]: ...

    def score(
        self,
        prompt: RenderedPrompt,
        completions: list[str],
        reference: str | None = None,
        config: RewardConfig | None = None,
        targets: list[str | None] | None = None,
        answer_probes: int = 0,
        cancel: threading.Event | None = None,
        pool_answers: list[str | None] | None = None,
        progress: bool | None = None,
    ) -> ScoredPool: ...

    def rank(self, candidates: Sequence[CandidateScore], strategy: str) -> list[int]: ...

    def encode(self, text: str) -> tuple[int, ...]: ...


def run_beam_prune(
    pipeline: SearchStages, request: GenerationRequest, cancel: threading.Event | None
) -> PipelineResult:
    """The `beam_prune` strategy: the search with the request's settings, reported as a pipeline result
    (every finished path ranked, the search's own accounting in `search`)."""
    config = request.search
    assert isinstance(config, BeamPruneConfig)  # GenerationRequest gives beam_prune its settings
    result = beam_prune(pipeline, request.prompt, request.sampling, config, request.reward, request.reference, cancel)
    ranked = [
        RankedCandidate(i, score, path.finish_reason or "stop", path.n_tokens)
        for i, (path, score) in enumerate(result.ranked)
    ]
    prompt_tokens = len(request.prompt.token_ids)
    usage = Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=result.generated_tokens,
        scoring_tokens=result.scoring_tokens,
        total_tokens=prompt_tokens + result.generated_tokens,
    )
    timings = Timings(result.generate_s * 1000, result.score_s * 1000)
    return PipelineResult(ranked, usage, timings, request.strategy.name, request.prompt.format, search=result)


def beam_prune(
    stages: SearchStages,
    rendered: RenderedPrompt,
    sampling: SamplingParams,
    config: BeamPruneConfig,
    reward: RewardConfig | None = None,
    reference: str | None = None,
    cancel: threading.Event | None = None,
) -> BeamPruneResult:
    """Search from a rendered prompt; `sampling` gives temperature, top-p and the logit bias (its n and
    max_tokens are unused).

    Every path starts with the prompt's prefill, followed by `<episode_1>` unless the prefill already
    opens it. With a `reference`, J aims every path (finished or not) at it. Scoring goes through
    `stages.score`, which renders the prompt for the scorer's model when that is another model.
    """
    reward = reward or stages.reward_config
    prefill = rendered.prefill
    if not prefill.rstrip().endswith(FIRST_EPISODE):
        prefill = prefill + FIRST_EPISODE
    ledger = _Ledger()
    live = [SearchPath(prefill) for _ in range(config.width)]
    # The request's logit bias shapes every step; its answer probes are measurements and stay greedy and
    # unbiased. Penalties cannot come here (`GenerationRequest` refuses them for beam_prune).
    step = SamplingParams(
        1, config.episode_tokens, sampling.temperature, sampling.top_p, None, (CLOSE,), logit_bias=sampling.logit_bias
    )
    for _ in range(config.max_episodes):
        stepping = _affordable(live, config, ledger)
        if not stepping:  # the budget is spent: `live` keeps the best prefixes for a forced answer
            break
        live = stepping
        _check(cancel)
        ledger.rounds += 1
        _advance(stages, rendered, live, step, ledger, cancel)
        finished = [p for p in live if p.finish_reason is not None]
        live = [p for p in live if p.finish_reason is None]
        _probe_answers(stages, rendered, live, reward, config, ledger, cancel)
        scores = _score(stages, rendered, finished, live, reward, config, ledger, reference, cancel)
        ledger.done.extend(zip(finished, scores[: len(finished)], strict=True))
        values = _values(scores, config)[len(finished) :]
        going = scores[len(finished) :]
        live, values = _exit(stages, rendered, live, going, values, reward, config, ledger, reference, cancel)
        live = _prune(live, values, config, ledger)
    if not ledger.done and live:
        ledger.done.append(_force(stages, rendered, live[0], reward, config, ledger, reference, cancel))
    candidates = [score for _, score in ledger.done]
    order = stages.rank(candidates, config.final_strategy) if candidates else []
    return BeamPruneResult(
        ranked=[ledger.done[i] for i in order],
        generated_tokens=ledger.generated,
        probe_tokens=ledger.probe,
        scoring_tokens=ledger.scored,
        rounds=ledger.rounds,
        pruned=ledger.pruned,
        exited=ledger.exited,
        unfinished=len(live),
        generate_s=ledger.generate_s,
        score_s=ledger.score_s,
    )


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled during beam-prune")


def _affordable(live: list[SearchPath], config: BeamPruneConfig, ledger: _Ledger) -> list[SearchPath]:
    """Keep the best live paths whose next step (and answer probe) the remaining budget can pay for."""
    if config.token_budget is None:
        return live
    per_path = config.episode_tokens + config.answer_tokens
    affordable = max(0, (config.token_budget - ledger.generated) // per_path)
    if affordable:
        ledger.pruned += max(0, len(live) - affordable)
    return live[:affordable]


def _generate_each(
    stages: SearchStages,
    rendered: RenderedPrompt,
    continuations: list[str],
    params: SamplingParams,
    cancel: threading.Event | None,
) -> list[Generation]:
    """One step after the prompt for every continuation, handed to the engine together so it can batch them.
    A path holds text the search wrote (closing tags, probes), so its text is tokenized here, after the
    prompt's own ids; its finished form is scored as text (tokenized once, by the scorer)."""
    if not continuations:
        return []
    prompts = [rendered.token_ids + stages.encode(text) for text in continuations]
    return stages.generate_many(prompts, params, cancel)


def _advance(
    stages: SearchStages,
    rendered: RenderedPrompt,
    live: list[SearchPath],
    step: SamplingParams,
    ledger: _Ledger,
    cancel: threading.Event | None,
) -> None:
    started = time.perf_counter()
    outputs = _generate_each(stages, rendered, [p.text for p in live], step, cancel)
    ledger.generate_s += time.perf_counter() - started
    for path, output in zip(live, outputs, strict=True):
        text, n_tokens, finish = output.text, output.n_tokens, output.finish_reason
        path.n_tokens += n_tokens
        ledger.generated += n_tokens
        number = path.closed + 1
        opened = "<episode_" in (text if path.closed else path.text + text)
        if text.endswith(CLOSE):
            path.text += f"{text[: -len(CLOSE)]}</episode_{number}>\n"
            path.closed = number
        elif finish == "length":  # the step ran past its cap: close the episode where it stopped
            path.text += f"{text}</episode_{number}>\n" if opened else text
            path.closed = number if opened else path.closed
        else:  # the model ended its text
            path.text += text
            path.finish_reason = "stop"


def _probe_answers(
    stages: SearchStages,
    rendered: RenderedPrompt,
    live: list[SearchPath],
    reward: RewardConfig,
    config: BeamPruneConfig,
    ledger: _Ledger,
    cancel: threading.Event | None,
) -> None:
    """Greedy-decode the answer each live prefix points to (what J is aimed at while it is unfinished)."""
    params = SamplingParams(1, config.answer_tokens, 0.0, 1.0, None, (reward.target_suffix,))
    started = time.perf_counter()
    outputs = _generate_each(stages, rendered, [p.text + reward.probe for p in live], params, cancel)
    ledger.generate_s += time.perf_counter() - started
    for path, output in zip(live, outputs, strict=True):
        text, n_tokens = output.text, output.n_tokens
        ledger.generated += n_tokens
        ledger.probe += n_tokens
        answer = text.removesuffix(reward.target_suffix).strip()
        path.probe_answer = answer or None


def _targets(
    answers: list[str | None], finished: int, config: BeamPruneConfig, reference: str | None
) -> list[str | None]:
    """With a reference every path aims at it; else finished paths aim at their own answer and live ones at
    their probe answer or the pool's consensus. `answers`: the finished paths' answers, then the live ones'
    probe answers."""
    if reference is not None and reference.strip():
        return [reference.strip()] * len(answers)
    if config.partial_target == "probe":
        return list(answers)
    return answers[:finished] + choose_targets(answers, "consensus")[finished:]


def _score(
    stages: SearchStages,
    rendered: RenderedPrompt,
    finished: list[SearchPath],
    live: list[SearchPath],
    reward: RewardConfig,
    config: BeamPruneConfig,
    ledger: _Ledger,
    reference: str | None,
    cancel: threading.Event | None,
) -> list[CandidateScore]:
    """Scores of `finished + live`, in that order."""
    paths = finished + live
    if not paths:
        return []
    answers = [extract_answer(p.text) for p in finished] + [p.probe_answer for p in live]
    targets = _targets(answers, len(finished), config, reference)
    probes = MAX_ANSWER_PROBES if config.probes_pool else 0
    texts = [p.text for p in paths]
    scored = stages.score(rendered, texts, None, reward, targets, probes, cancel, pool_answers=answers, progress=False)
    ledger.score_s += scored.timings.score_ms / 1000
    ledger.scored += scored.usage.scoring_tokens
    return scored.scores


def _values(scores: list[CandidateScore], config: BeamPruneConfig) -> list[float]:
    """What each scored path would be kept by: its L2T score, or its mass on the answers the rest of this
    round's pool (the paths just finished and the live ones) supports."""
    if config.value == "reward":
        return [s.measured_score for s in scores]
    return pool_value(scores, PROGRESS_SETTINGS)


def _exit(
    stages: SearchStages,
    rendered: RenderedPrompt,
    live: list[SearchPath],
    scores: list[CandidateScore],
    values: list[float],
    reward: RewardConfig,
    config: BeamPruneConfig,
    ledger: _Ledger,
    reference: str | None,
    cancel: threading.Event | None,
) -> tuple[list[SearchPath], list[float]]:
    """Close the live paths whose probe answer has locked in (J ≥ exit_confidence) with that answer; they are
    scored as finished paths and join the answers. Returns the paths that go on, with their values."""
    if config.exit_confidence is None:
        return live, values
    going, going_values, exits = [], [], []
    for path, score, value in zip(live, scores, values, strict=True):
        confidence = answer_probability(score, path.probe_answer) if path.probe_answer else None
        if confidence is not None and confidence >= config.exit_confidence:
            exits.append(_closed(path, reward, "exit"))
        else:
            going.append(path)
            going_values.append(value)
    if exits:
        ledger.exited += len(exits)
        closed = _score(stages, rendered, exits, [], reward, config, ledger, reference, cancel)
        ledger.done.extend(zip(exits, closed, strict=True))
    return going, going_values


def _prune(live: list[SearchPath], values: list[float], config: BeamPruneConfig, ledger: _Ledger) -> list[SearchPath]:
    """The best live paths, best first; with `expand`, copies of the best refill the freed slots."""
    order = sorted(range(len(live)), key=lambda i: -values[i])
    keep = min(len(live), max(config.min_live, math.ceil(len(live) * config.keep_ratio)))
    survivors = [live[i] for i in order[:keep]]
    ledger.pruned += len(live) - keep
    if config.expand and survivors:
        copies = [survivors[i % len(survivors)] for i in range(len(live) - keep)]
        survivors += [SearchPath(c.text, c.closed, 0, None, c.probe_answer) for c in copies]
    return survivors


def _closed(path: SearchPath, reward: RewardConfig, reason: str) -> SearchPath:
    """The path with its probe answer written after the probe text, finished for `reason` (exit | forced)."""
    answer = path.probe_answer or ""
    text = f"{path.text}{reward.probe}{answer}{reward.target_suffix}"
    return SearchPath(text, path.closed, path.n_tokens, reason, answer)


def _force(
    stages: SearchStages,
    rendered: RenderedPrompt,
    path: SearchPath,
    reward: RewardConfig,
    config: BeamPruneConfig,
    ledger: _Ledger,
    reference: str | None,
    cancel: threading.Event | None,
) -> tuple[SearchPath, CandidateScore]:
    """Close the best unfinished path with its probe answer, marked `forced`."""
    forced = _closed(path, reward, "forced")
    (score,) = _score(stages, rendered, [forced], [], reward, config, ledger, reference, cancel)
    return forced, score
