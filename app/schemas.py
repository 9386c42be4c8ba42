"""Pydantic models shared by several API surfaces: messages, reward overrides, scored candidates (no policy:
limits live in the serving layer, app/serving.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from l2t_core.config_flags import field_help
from l2t_core.engines.base import MAX_LOGIT_BIAS, MAX_LOGIT_BIAS_TOKENS, MAX_PENALTY
from l2t_core.episodes import PROMPT_FORMATS
from l2t_core.pipeline import RankedCandidate, Timings, Usage
from l2t_core.reward import AGGREGATIONS, NORMALISATIONS, REQUEST_TARGETS, SUFFIX_PROBABILITIES, RewardConfig
from l2t_core.scoring import CandidateScore
from l2t_core.search import SERVED_STRATEGIES, STRATEGIES, SYNONYMS


def registry_choice(names: Sequence[str], synonyms: Mapping[str, str] | None = None) -> Any:
    """A string field whose choices come from a registry (an enum in the OpenAPI schema); synonyms are
    accepted and replaced by their canonical name."""
    aliases = dict(synonyms or {})

    def canonical(value: Any) -> Any:
        return aliases.get(value, value) if isinstance(value, str) else value

    return Annotated[Literal.__getitem__(tuple(names)), BeforeValidator(canonical)]


if TYPE_CHECKING:
    StrategyName = str
    RerankerName = str
    PromptFormatName = str
    AggregationName = str
    TargetName = str
    NormalisationName = str
    SuffixProbabilityName = str
else:
    StrategyName = registry_choice(SERVED_STRATEGIES, SYNONYMS)
    # what `adaptive` may select with: the served rerankers
    RerankerName = registry_choice(
        tuple(n for n in SERVED_STRATEGIES if STRATEGIES[n].kind == "rerank"),
        {k: v for k, v in SYNONYMS.items() if STRATEGIES[v].kind == "rerank"},
    )
    PromptFormatName = registry_choice(tuple(PROMPT_FORMATS))
    AggregationName = registry_choice(AGGREGATIONS)
    TargetName = registry_choice(REQUEST_TARGETS)
    NormalisationName = registry_choice(NORMALISATIONS)
    SuffixProbabilityName = registry_choice(SUFFIX_PROBABILITIES)


class RequestBody(BaseModel):
    """Every request body: strict types where the OpenAI API is strict (`n: true` or `"stream": 0` is an
    error, not 1 or false), and text that is valid Unicode (a lone surrogate such as "\\ud800" parses
    as JSON but no tokenizer can take it, so it is refused here, for its own request only)."""

    model_config = ConfigDict(strict=True)

    @model_validator(mode="before")
    @classmethod
    def valid_unicode(cls, data: Any) -> Any:
        where = _lone_surrogate(data, "")
        if where is not None:
            raise ValueError(f"{where or 'the body'} is not valid Unicode text (it contains a lone surrogate)")
        return data

    @model_validator(mode="before")
    @classmethod
    def integral_numbers(cls, data: Any) -> Any:
        """JSON has one number type and JSON Schema counts 2.0 as an integer, so an integer field (or a
        list of integers, or of such lists: token ids) takes 2.0 as 2; `true` and "2" stay errors."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, field in cls.model_fields.items():
            value = data.get(name)
            if not _takes_int(field.annotation):
                continue
            if isinstance(value, (float, list)):
                data[name] = _integral(value)
        return data


def _integral(value: Any) -> Any:
    """2.0 as 2, inside lists too (a list of token-id prompts is a list of lists); anything else as it is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def refuse_null(value: Any) -> Any:
    """An optional field sent as JSON null: refused, so that absent is its only "none" (the schemas say so)."""
    if value is None:
        raise ValueError("leave the field out instead of sending null")
    return value


def exactly_one(first: str, first_value: Any, second: str, second_value: Any) -> None:
    """Two alternative inputs (a text or a chat): exactly one of them given."""
    if (first_value is None) == (second_value is None):
        raise ValueError(f"give exactly one of {first!r} or {second!r}")


def _takes_int(annotation: Any) -> bool:
    """Whether a field's type admits int: `int`, or a union or `Annotated` wrapper around it (as in
    `Annotated[int, Field(ge=1)] | None`)."""
    if annotation is int:
        return True
    return any(_takes_int(arg) for arg in get_args(annotation) if arg is not None)


def _lone_surrogate(value: Any, path: str) -> str | None:
    """The dotted path of the first string in a parsed JSON value that cannot be encoded as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        where = _lone_surrogate(item, f"{path}.{key}" if path else str(key))
        if where is not None:
            return where
    return None


# Presence and frequency penalties and a logit bias, in OpenAI's ranges and OpenAI's form on every surface:
# the bias maps token ids, written as strings ("50256": -100), to values added to their logits.
Penalty = Annotated[float, Field(ge=-MAX_PENALTY, le=MAX_PENALTY)]
TokenIdKey = Annotated[str, Field(pattern=r"^[0-9]{1,10}$")]
LogitBias = Annotated[
    dict[TokenIdKey, Annotated[float, Field(ge=-MAX_LOGIT_BIAS, le=MAX_LOGIT_BIAS)]],
    # the schema says that a key is a token id (pydantic states the key pattern, but not that it is the only one)
    Field(max_length=MAX_LOGIT_BIAS_TOKENS, json_schema_extra={"additionalProperties": False}),
]


def logit_bias_pairs(bias: Mapping[str, float] | None) -> tuple[tuple[int, float], ...]:
    """A request's logit bias as `SamplingParams` takes it: (token id, bias) pairs in token order, so that
    equal biases written in another order are equal (and may share a batch)."""
    return tuple(sorted((int(token), value) for token, value in (bias or {}).items()))


class ChatMessage(RequestBody):
    role: Literal["system", "user", "assistant"]
    content: str


# The request fields that override `RewardConfig` fields of the same name.
REWARD_OVERRIDES = ("target", "alpha", "beta", "aggregation", "compression_normalisation", "suffix_probability")


class RewardOverrides(RequestBody):
    """Per-request reward settings; omitted fields keep the server's defaults."""

    target: TargetName = Field(RewardConfig.target, description="J's target answer when no reference is given")
    reference: str | None = Field(None, max_length=1000, description="reference answer: J is measured against it")
    alpha: float | None = Field(None, ge=0, description=field_help(RewardConfig, "alpha"))
    beta: float | None = Field(None, ge=0, description=field_help(RewardConfig, "beta"))
    aggregation: AggregationName | None = Field(None, description=field_help(RewardConfig, "aggregation"))
    compression_normalisation: NormalisationName | None = Field(
        None, description=field_help(RewardConfig, "compression_normalisation")
    )
    suffix_probability: SuffixProbabilityName | None = Field(
        None, description=field_help(RewardConfig, "suffix_probability")
    )

    def reward_config(self, base: RewardConfig) -> RewardConfig:
        """The server's reward settings with this request's overrides (fields of `RewardConfig` by name)."""
        return base.with_overrides(**{name: getattr(self, name) for name in REWARD_OVERRIDES})


class EpisodeOut(BaseModel):
    index: int
    text: str
    start: int
    end: int
    token_start: int
    token_end: int
    n_tokens: int
    j_before: float
    j_after: float
    log_j_before: float | None
    log_j_after: float | None
    fitting_gain: float
    compression_penalty: float | None = Field(
        description="C_k; null when the engine scored (scorer=engine): compression_penalty_absent says why"
    )
    reward: float | None = Field(description="r_k = ΔI_k − β C_k; null when C_k is null and β ≠ 0")
    progress: float | None = Field(
        None,
        description="change, across the episode, of the path's probability mass on the answers the rest of "
        "the pool supports (multi-target J; set with `progress` or strategy posterior_vote)",
    )


class CandidateOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    index: int = Field(description="position in generation (or input) order")
    text: str
    answer: str | None
    target: str | None
    score: float | None = Field(description="the aggregated episode rewards; null when they are null")
    tagged: bool
    n_tokens: int
    mean_logprob: float
    answer_start: int
    finish_reason: str | None = None
    episodes: list[EpisodeOut]

    @classmethod
    def from_score(cls, index: int, score: CandidateScore, finish_reason: str | None = None) -> CandidateOut:
        return cls.model_validate(
            {"index": index, "text": score.text, "finish_reason": finish_reason, **score.to_dict()}
        )

    @classmethod
    def from_ranked(cls, ranked: RankedCandidate) -> CandidateOut:
        return cls.from_score(ranked.index, ranked.score, ranked.finish_reason)


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    scoring_tokens: int
    total_tokens: int

    @classmethod
    def from_usage(cls, usage: Usage) -> UsageOut:
        return cls(**usage.__dict__)


class TimingsOut(BaseModel):
    generate_ms: float
    score_ms: float

    @classmethod
    def from_timings(cls, timings: Timings) -> TimingsOut:
        return cls(**timings.__dict__)
