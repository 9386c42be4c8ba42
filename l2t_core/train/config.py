"""One training config: a dataclass whose fields carry their help text, loaded from a YAML file and/or
CLI flags (flags win, both derived from the fields), validated with messages that name the field.

Settings the trainer shares with serving take their defaults and help from where serving declares them
(`SamplingParams`, `RewardConfig`, the served prompt format); only what training does differently
(Δθ̃ as drift from the initial policy) is declared here."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from l2t_core.config_flags import add_dataclass_flags, inherited
from l2t_core.engines import SamplingParams
from l2t_core.engines.engine_args import (
    EngineArgsError,
    add_engine_arg_flags,
    checked_engine_args,
    engine_args_from,
    normal_keys,
)
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, PROMPT_FORMATS
from l2t_core.eval.tasks.arithmetic import LEVELS
from l2t_core.reward import DELTA_MODES, SUFFIX_PROBABILITIES, RewardConfig
from l2t_core.train.advantages import COMPRESSION_SCALES

ROLLOUT_ENGINES = ("transformers", "vllm")
SCHEDULES = ("cosine", "constant")


def _f(default: Any, help_: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help_, **({"choices": choices} if choices else {})})


@dataclass
class TrainConfig:
    model: str = _f("default", "policy to fine-tune: 'default' (SmolLM2 GGUF), a folder, a .gguf or a cached HF id")
    data: str = _f(
        "gsm8k",
        "a jsonl file with question/answer fields; a data set named by its suite (gsm8k, math500: read from "
        "$L2T_DATA_DIR, default ../shared/data); or 'arithmetic' (seeded graded arithmetic, no file)",
    )
    arithmetic_levels: str = _f("add2,addsub3,word2", "data arithmetic: comma-separated levels to train on")
    eval_fraction: float = _f(
        0.1, "share of a jsonl file held back for evaluation (never trained on); arithmetic holds back the eval suite"
    )
    eval_size: int = _f(32, "held-back questions evaluated at each eval interval")
    eval_samples: int = _f(0, "k > 0: the evaluation also reports majority@k of answers sampled at rollout temperature")
    eval_only: bool = _f(
        False,
        "evaluate --model (or, with --resume, the latest checkpoint in output_dir) on the held-back questions, "
        "append the result to OUTPUT_DIR/held_back.jsonl and exit",
    )
    group_size: int = _f(4, "G: rollouts per question")
    batch_size: int = _f(2, "questions per optimiser step")
    grad_accum: int = _f(1, "micro-batches (of batch_size questions) accumulated per step")
    lr: float = _f(1e-6, "peak learning rate")
    schedule: str = _f("cosine", "learning-rate schedule after warm-up", SCHEDULES)
    warmup_ratio: float = _f(0.1, "share of the steps spent warming up linearly")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    max_new_tokens: int = _f(256, "rollout length limit")
    prompt_format: str = _f(
        DEFAULT_PROMPT_FORMAT,
        "prompt format of rollouts and evaluation (the server's default unless set); a format's prefill is part "
        "of the prompt for the policy gradient (its tokens get no advantage)",
        tuple(PROMPT_FORMATS),
    )
    temperature: float = inherited(SamplingParams, "temperature", "rollout sampling temperature")
    top_p: float = inherited(SamplingParams, "top_p", "rollout nucleus sampling")
    alpha: float = inherited(RewardConfig, "alpha", "α: weight of the dense L2T reward; 0 gives outcome-only GRPO")
    beta: float = inherited(RewardConfig, "beta", "β: weight of the compression penalty inside r_k")
    compression_scale: str = _f(
        "group",
        "how C_k meets β: 'group' puts it on the group's ΔI scale (its mean penalty = its mean |ΔI|), 'raw' "
        "as measured (~1e-8 against ΔI ~1e-3 in drift mode, where β changes nothing)",
        COMPRESSION_SCALES,
    )
    length_penalty: float = _f(
        0.0, "λ > 0: the length-penalty baseline, plain GRPO on r_out − λ·tokens (needs alpha 0)"
    )
    kl_coef: float = _f(0.001, "KL coefficient (k3) against the initial policy; 0 skips the reference model")
    clip_eps: float = _f(0.2, "ε of the clipped objective")
    trunc_keep: float = _f(0.95, "share of token rewards kept by the truncated mean")
    delta_mode: str = inherited(
        RewardConfig, "delta_mode", "Δθ̃ of the compression penalty: drift (from the initial policy) | step", "drift"
    )
    suffix_probability: str = inherited(RewardConfig, "suffix_probability")
    lora: bool = _f(False, "train LoRA adapters (peft) instead of all weights")
    lora_rank: int = _f(16, "LoRA rank")
    steps: int = _f(100, "optimiser steps")
    eval_interval: int = _f(0, "evaluate every N steps (0: only at the end)")
    save_interval: int = _f(10, "checkpoint every N steps (and at the end)")
    keep_checkpoints: int = _f(2, "checkpoints kept on disk; only the latest keeps the optimiser state")
    output_dir: str = _f("runs/l2t", "checkpoints, TensorBoard logs and metrics.jsonl go here")
    seed: int = _f(0, "seed for data order, sampling and initialisation")
    engine: str = _f(
        "transformers",
        "rollout engine: transformers, or vllm (in-process, the policy's weights pushed into it after every step)",
        ROLLOUT_ENGINES,
    )
    vllm_args: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "engine vllm: arguments of vLLM's engine (AsyncEngineArgs fields: max_model_len, max_num_seqs, "
            "enforce_eager, …; they override the trainer's dtype and memory share); in YAML a mapping, on the "
            "command line --vllm-arg KEY=VALUE (repeated) and --vllm-config FILE.yaml, which override it"
        },
    )
    device: str = _f("auto", "auto | cpu | cuda")
    resume: bool = _f(
        False,
        "continue from the latest checkpoint in output_dir (or, if it does not read whole, the newest one that does)",
    )
    overwrite_output_dir: bool = _f(
        False,
        "start over in an output_dir that holds checkpoints, deleting them first (without it, or --resume, such "
        "a folder is refused)",
    )

    def __post_init__(self) -> None:
        checks = [
            (self.group_size >= 2, "group_size must be >= 2 (advantages are relative to the group)"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.grad_accum >= 1, "grad_accum must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.prompt_format in PROMPT_FORMATS, f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (self.max_new_tokens >= 1, "max_new_tokens must be >= 1"),
            (self.temperature > 0, "temperature must be > 0 (rollouts are sampled)"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (
                min(self.alpha, self.beta, self.kl_coef, self.length_penalty) >= 0,
                "alpha, beta, kl_coef and length_penalty must be >= 0",
            ),
            (0 < self.clip_eps < 1, "clip_eps must be in (0, 1)"),
            (
                self.compression_scale in COMPRESSION_SCALES,
                f"compression_scale must be one of {', '.join(COMPRESSION_SCALES)}",
            ),
            (0 < self.trunc_keep <= 1, "trunc_keep must be in (0, 1]"),
            (self.delta_mode in DELTA_MODES, f"delta_mode must be one of {', '.join(DELTA_MODES)}"),
            (
                self.suffix_probability in SUFFIX_PROBABILITIES,
                f"suffix_probability must be one of {', '.join(SUFFIX_PROBABILITIES)}",
            ),
            (0 <= self.eval_fraction < 1, "eval_fraction must be in [0, 1)"),
            (self.steps >= 1, "steps must be >= 1"),
            (self.save_interval >= 1, "save_interval must be >= 1"),
            (self.eval_size >= 0 and self.eval_samples >= 0, "eval_size and eval_samples must be >= 0"),
            (not self.eval_only or self.eval_size >= 1, "eval_only needs eval_size >= 1"),
            (bool(self.levels) and set(self.levels) <= set(LEVELS), f"arithmetic_levels: use some of {LEVELS}"),
            (
                self.length_penalty == 0 or self.alpha == 0,
                "length_penalty is the length-penalty baseline, which has no dense reward: set alpha 0",
            ),
            (self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1 (resume needs the latest)"),
            (self.engine in ROLLOUT_ENGINES, f"engine must be one of {', '.join(ROLLOUT_ENGINES)}"),
            (
                not (self.resume and self.overwrite_output_dir),
                "resume continues the run in output_dir and overwrite_output_dir deletes it: choose one",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if not isinstance(self.vllm_args, dict):
            raise ValueError("vllm_args must be a mapping of vLLM engine argument: value")
        self.vllm_args = checked_engine_args(self.engine, self.vllm_args)

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(level.strip() for level in self.arithmetic_levels.split(",") if level.strip())

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> TrainConfig:
        parser = argparse.ArgumentParser(
            prog="python -m l2t_core.train", description="GRPO with the L2T episode reward"
        )
        parser.add_argument("--config", type=Path, help="YAML file with any of the fields below")
        add_engine_arg_flags(parser)  # vllm_args, a mapping: --vllm-arg KEY=VALUE and --vllm-config FILE
        names = [f.name for f in dataclasses.fields(cls) if f.name != "vllm_args"]
        add_dataclass_flags(parser, cls, names, unset=True)  # unset: a flag not given leaves the file's value
        namespace = parser.parse_args(argv)
        try:
            flagged_vllm_args = engine_args_from(namespace)
        except EngineArgsError as exc:
            parser.error(str(exc))
        args = {k: v for k, v in vars(namespace).items() if k not in ("vllm_config", "vllm_assignments")}
        values: dict[str, Any] = {}
        config_file = args.pop("config")
        if config_file is not None:
            try:
                loaded = yaml.safe_load(config_file.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                parser.error(f"cannot read --config {config_file}: {exc}")
            if not isinstance(loaded, dict):
                parser.error(f"--config {config_file} must hold a mapping of field: value")
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(loaded) - known)
            if unknown:
                parser.error(f"unknown field(s) in {config_file}: {unknown}")
            values.update(loaded)
        values.update({k: v for k, v in args.items() if v is not None})
        try:
            if flagged_vllm_args:  # over the YAML file's vllm_args
                file_args = values.get("vllm_args")
                values["vllm_args"] = {
                    **normal_keys(file_args if isinstance(file_args, dict) else {}),
                    **flagged_vllm_args,
                }
            return cls(**values)
        except (TypeError, ValueError) as exc:
            parser.error(str(exc))
        raise AssertionError("unreachable")
