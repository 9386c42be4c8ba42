"""Server settings, read once from the environment (`L2T_…`) or passed in by `l2t serve`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from l2t_core.engines.engine_args import checked_engine_args
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, prompt_format
from l2t_core.reward import SUFFIX_PROBABILITIES, RewardConfig
from l2t_core.search import DEFAULT_STRATEGY, get_strategy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="L2T_", extra="ignore")

    model: str = Field("default", description="'default' (embedded SmolLM2), a local folder, .gguf or cached HF id")
    served_model_name: str | None = Field(None, description="name reported by /v1/models (default: model)")
    engine: Literal["transformers", "vllm", "openai"] = "transformers"
    device: str = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    scorer_model: str | None = Field(
        None, description="a second model that measures J, rewards and log-probs (default: the generator's)"
    )
    scorer_device: str | None = Field(None, description="the scorer model's device (default: device)")
    vllm_args: dict[str, Any] = Field(
        default_factory=dict,
        description="engine=vllm: arguments of vLLM's engine (AsyncEngineArgs fields, as `vllm serve` names "
        "them: tensor_parallel_size, max_model_len, quantization, max_num_seqs, …), as a JSON object in "
        "L2T_VLLM_ARGS; vLLM's defaults for the rest (no max_model_len: the model's own context)",
    )
    remote_url: str | None = Field(None, description="OpenAI-compatible server for engine=openai")
    remote_model: str | None = None
    remote_api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = Field(None, description="if set, requests need 'Authorization: Bearer <key>'")
    max_queue: int = Field(32, ge=1, description="requests admitted at once; beyond it 503 + Retry-After")
    request_timeout_s: float = Field(600.0, gt=0)
    max_n: int = Field(64, ge=1, le=64)
    max_tokens_limit: int = Field(2048, ge=1)
    max_prompt_chars: int = Field(32_000, ge=1)
    max_request_tokens: int | None = Field(
        None,
        ge=1,
        description="tokens one request may make the model read and write (n × (prompt + max_tokens), a search's "
        "re-read prefixes, /score's sequences); default 16 × the model's context",
    )
    max_body_bytes: int = Field(2_000_000, ge=1024)
    retry_after_s: int = Field(2, ge=1)
    prompt_format: str = Field(DEFAULT_PROMPT_FORMAT, description="prompt format of requests that name none")
    strategy: str = Field(DEFAULT_STRATEGY, description="strategy of requests that name none")
    suffix_probability: str = Field(
        RewardConfig.suffix_probability,
        description="J's answer suffix for requests that name none: its own token, or every token starting with it",
    )
    scoring_window_ms: float = Field(
        10.0, ge=0, description="requests whose generation finished within this window are scored in one call"
    )
    scoring_max_jobs: int = Field(16, ge=1, description="requests per scorer call at most (1: each scored alone)")

    @field_validator("prompt_format")
    @classmethod
    def known_prompt_format(cls, name: str) -> str:
        return prompt_format(name).name

    @field_validator("suffix_probability")
    @classmethod
    def known_suffix_probability(cls, name: str) -> str:
        if name not in SUFFIX_PROBABILITIES:
            raise ValueError(f"suffix_probability must be one of {', '.join(SUFFIX_PROBABILITIES)}, got {name!r}")
        return name

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

    @property
    def model_id(self) -> str:
        return self.served_model_name or self.model

    @property
    def scorer_model_id(self) -> str:
        """The model that scores, as reported next to `model_id` (the same one unless `scorer_model` is set)."""
        return self.scorer_model or self.model_id
