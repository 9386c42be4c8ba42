"""Server settings, read once from the environment (`L2T_…`) or passed in by `l2t serve`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from l2t_core.engines import ENGINES
from l2t_core.engines.engine_args import checked_engine_args
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, PROMPT_FORMATS, prompt_format
from l2t_core.models.loading import DTYPES
from l2t_core.reward import SUFFIX_PROBABILITIES, RewardConfig
from l2t_core.scoring import COMPRESSION_ABSENT, SCORERS
from l2t_core.search import DEFAULT_STRATEGY, SERVED_STRATEGIES, get_strategy


def choices(names: Iterable[str]) -> dict[str, Any]:
    """A field's registry of values (in its `json_schema_extra`): `l2t serve` offers them as the flag's choices."""
    return {"choices": list(names)}


class Settings(BaseSettings):
    """Every server setting, once: its type, default and description. Each is an environment variable
    (`L2T_<NAME>`) and an `l2t serve --<name>` flag derived from this class (app/cli.py)."""

    model_config = SettingsConfigDict(env_prefix="L2T_", extra="ignore")

    model: str = Field("default", description="'default' (embedded SmolLM2), a local folder, .gguf or cached HF id")
    served_model_name: str | None = Field(None, description="name reported by /v1/models (default: model)")
    engine: str = Field(
        "transformers",
        description="what generates: transformers (in-process), vllm (in-process), openai (a remote server)",
        json_schema_extra=choices(ENGINES),
    )
    device: str = Field("auto", description="the models' device: auto, cpu, cuda, cuda:N")
    dtype: str = Field("float32", description="the models' dtype", json_schema_extra=choices(DTYPES))
    scorer_model: str | None = Field(
        None, description="a second model that measures J, rewards and log-probs (default: the generator's)"
    )
    scorer_device: str | None = Field(None, description="the scorer model's device (default: device)")
    scorer: str = Field(
        "torch",
        description="where J and log-probs are measured: torch (a scorer holding the weights, which also measures "
        "the compression penalty) or engine (the generation engine: vllm, openai, or transformers as the CPU twin; "
        "no second copy of the model; "
        "the compression penalty is then null and strategies ranking by the L2T path score need beta 0)",
        json_schema_extra=choices(SCORERS),
    )
    vllm_args: dict[str, Any] = Field(
        default_factory=dict,
        description="engine=vllm: arguments of vLLM's engine (AsyncEngineArgs fields, as `vllm serve` names "
        "them: tensor_parallel_size, max_model_len, quantization, max_num_seqs, …), as a JSON object in "
        "L2T_VLLM_ARGS; vLLM's defaults for the rest (no max_model_len: the model's own context)",
    )
    remote_url: str | None = Field(None, description="OpenAI-compatible server for engine=openai")
    remote_model: str | None = Field(
        None, description="the model name sent to the remote server (default: the local model's name)"
    )
    remote_api_key: str | None = Field(None, description="bearer key sent to the remote server")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, description="port to listen on (0: any free port)")
    api_key: str | None = Field(None, description="if set, requests need 'Authorization: Bearer <key>'")
    max_queue: int = Field(32, ge=1, description="requests admitted at once; beyond it 503 + Retry-After")
    request_timeout_s: float = Field(600.0, gt=0, description="seconds a request may take; beyond it 504")
    max_n: int = Field(
        64, ge=1, le=64, description="candidates one request may ask for (n or best_of; prompts × either for a list)"
    )
    max_tokens_limit: int = Field(2048, ge=1, description="max_tokens one request may ask for")
    max_prompt_chars: int = Field(32_000, ge=1, description="characters a prompt (or chat) may have")
    max_request_tokens: int | None = Field(
        None,
        ge=1,
        description="tokens one request may make the model read and write (n × (prompt + max_tokens), a search's "
        "re-read prefixes, /score's sequences); default 16 × the model's context",
    )
    max_body_bytes: int = Field(2_000_000, ge=1024, description="bytes a request body may have; beyond it 413")
    retry_after_s: int = Field(2, ge=1, description="seconds a 503 tells the client to wait (Retry-After)")
    prompt_format: str = Field(
        DEFAULT_PROMPT_FORMAT,
        description="prompt format of requests that name none",
        json_schema_extra=choices(PROMPT_FORMATS),
    )
    strategy: str = Field(
        DEFAULT_STRATEGY,
        description="strategy of requests that name none",
        json_schema_extra=choices(SERVED_STRATEGIES),
    )
    suffix_probability: str = Field(
        RewardConfig.suffix_probability,
        description="J's answer suffix for requests that name none: its own token, or every token starting with it",
        json_schema_extra=choices(SUFFIX_PROBABILITIES),
    )
    scoring_window_ms: float = Field(
        10.0, ge=0, description="requests whose generation finished within this window are scored in one call"
    )
    scoring_max_jobs: int = Field(16, ge=1, description="requests per scorer call at most (1: each scored alone)")

    @field_validator("engine", "dtype", "suffix_probability", "scorer")
    @classmethod
    def one_of_its_choices(cls, value: str, info: ValidationInfo) -> str:
        names = field_choices(cls, str(info.field_name))
        if value not in names:
            raise ValueError(f"{info.field_name} must be one of {', '.join(names)}, got {value!r}")
        return value

    @field_validator("prompt_format")
    @classmethod
    def known_prompt_format(cls, name: str) -> str:
        return prompt_format(name).name

    @field_validator("strategy")
    @classmethod
    def served_strategy(cls, name: str) -> str:
        strategy = get_strategy(name)
        if not strategy.served:
            raise ValueError(f"strategy {strategy.name!r} needs the gold answer and cannot be a server default")
        return strategy.name

    @model_validator(mode="after")
    def known_vllm_args(self) -> Settings:
        self.vllm_args = checked_engine_args(self.engine, self.vllm_args)
        return self

    @model_validator(mode="after")
    def engine_scoring_alone(self) -> Settings:
        """scorer=engine scores with the generator's own model: a second scorer model contradicts it, and J's
        'string' suffix probability cannot be read from log-probabilities of the actual tokens."""
        if self.scorer == "engine":
            if self.scorer_model is not None:
                raise ValueError("scorer=engine measures on the generation engine: it takes no scorer_model")
            if get_strategy(self.strategy).signal == "l2t":
                raise ValueError(
                    f"scorer=engine cannot serve strategy {self.strategy!r} as the default: it ranks by the L2T "
                    "path score, which needs the compression penalty the engine cannot measure"
                )
            if self.suffix_probability != "token":
                raise ValueError(
                    "scorer=engine needs suffix_probability 'token' (the engine reads each token's own log-prob)"
                )
        return self

    @property
    def compression_absent(self) -> str | None:
        """Why responses carry no compression penalty (scorer=engine), or None."""
        return COMPRESSION_ABSENT if self.scorer == "engine" else None

    @property
    def model_id(self) -> str:
        return self.served_model_name or self.model

    @property
    def scorer_model_id(self) -> str:
        """The model that scores, as reported next to `model_id` (the same one unless `scorer_model` is set)."""
        return self.scorer_model or self.model_id


def field_choices(settings: type[BaseSettings], name: str) -> list[str]:
    """The registry a settings field declares (`choices(...)` in its `json_schema_extra`); [] where none."""
    extra = settings.model_fields[name].json_schema_extra
    found = extra.get("choices") if isinstance(extra, dict) else None
    return [str(name) for name in found] if isinstance(found, list) else []
