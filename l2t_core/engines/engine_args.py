"""vLLM's engine arguments as l2t takes them: `--vllm-arg KEY=VALUE` (repeated), `--vllm-config FILE.yaml`,
the server's `L2T_VLLM_ARGS` (a JSON object) or the trainer's `vllm_args` mapping, checked by name against
vLLM's own `AsyncEngineArgs` before any model loads.

vLLM owns the meaning of every argument (tensor_parallel_size, max_model_len, quantization, max_num_seqs,
kv_cache_dtype, enforce_eager, …), so l2t keeps no list of them: the names are the fields of vLLM's
dataclass, a typo fails at once naming the field and its close matches, and values are vLLM's to check
when the engine starts. A value is read as YAML (`1024` an int, `0.5` a float, `true` a bool, `null`
None, anything else a string; `{…}`/`[…]` for the few dict- or list-valued fields). A file is read
first and the flags override it. What l2t does not pass is vLLM's default: no `max_model_len` means
the model's own context length.

Three keys are l2t's and refused here (`RESERVED` says why); the others l2t sets itself (dtype,
gpu_memory_utilization, seed, enforce_eager on a CPU) are defaults that these
arguments override.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from l2t_core.engines.base import EngineError

RESERVED = {
    "model": "l2t hands vLLM the folder it prepared from --model (the scorer reads the same weights); "
    "choose the model with --model",
    "tokenizer": "prompts are rendered and tokens counted with --model's own tokenizer, so vLLM must use that one",
    "enable_prefix_caching": "l2t keeps it on: a request's N candidates share its prompt, and fused J reads "
    "its answer probes' prefixes from the cache",
}


class EngineArgsError(EngineError, ValueError):
    """Engine arguments that cannot be used (unknown or reserved name, unreadable file, wrong engine).

    An `EngineError`, so the `l2t` commands print it as `error: …`, and a `ValueError`, so a pydantic
    setting or a dataclass config that validates these arguments reports it as its own validation error."""


def parse_assignment(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` → (key with `-` as `_`, the value read as YAML)."""
    key, sep, raw = text.partition("=")
    key = normal_key(key)
    if not sep or not key:
        raise EngineArgsError(f"--vllm-arg takes KEY=VALUE (e.g. max_model_len=32768), got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise EngineArgsError(f"--vllm-arg {key}: cannot read the value {raw!r}: {exc}") from exc
    return key, value


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML file holding one mapping of vLLM argument: value."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise EngineArgsError(f"cannot read --vllm-config {path}: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise EngineArgsError(f"--vllm-config {path} must hold a mapping of vLLM argument: value")
    return normal_keys(loaded)


def merge_engine_args(config_file: Path | None, assignments: Sequence[str]) -> dict[str, Any]:
    """The file's arguments, then each `KEY=VALUE` over them (a later one wins)."""
    merged = read_config_file(config_file) if config_file is not None else {}
    merged.update(parse_assignment(text) for text in assignments)
    return merged


def normal_key(key: Any) -> str:
    """vLLM's field name for a key written as its flag is (`max-model-len`, `--max-model-len`)."""
    return str(key).strip().lstrip("-").replace("-", "_")


def normal_keys(args: Mapping[Any, Any]) -> dict[str, Any]:
    normal: dict[str, Any] = {}
    for key, value in args.items():
        name = normal_key(key)
        if name in normal:
            raise EngineArgsError(f"vLLM argument {name!r} is given twice (as {key!r} and another spelling)")
        normal[name] = value
    return normal


def check_names(args: Mapping[str, Any], known: Collection[str]) -> None:
    """Refuse l2t's own keys and any name that is not a field of vLLM's `AsyncEngineArgs` (`known`)."""
    for name in args:
        if name in RESERVED:
            raise EngineArgsError(f"vLLM argument {name!r} is set by l2t and cannot be given: {RESERVED[name]}")
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `vllm serve --help` for the arguments"
            raise EngineArgsError(f"{name!r} is not an argument of vLLM's engine (AsyncEngineArgs){hint}")


def vllm_engine_fields() -> frozenset[str] | None:
    """The field names of the installed vLLM's `AsyncEngineArgs`; None where vLLM is not installed."""
    from l2t_core.engines.vllm_engine import vllm_available

    if not vllm_available():
        return None
    from vllm import AsyncEngineArgs

    return frozenset(f.name for f in dataclasses.fields(AsyncEngineArgs))


def checked_engine_args(
    engine: str, args: Mapping[Any, Any] | None, known: Collection[str] | None = None
) -> dict[str, Any]:
    """`args` with normal keys, checked for `engine`: they need engine vllm, and their names must be vLLM's
    (`known`, by default the installed vLLM's fields). Without vLLM installed the names go unchecked:
    the vllm engine itself then refuses to start, saying vLLM is missing."""
    normal = normal_keys(args or {})
    if not normal:
        return {}
    if engine != "vllm":
        raise EngineArgsError(
            f"--vllm-arg/--vllm-config/vllm_args need --engine vllm (the engine is {engine!r}); "
            f"given: {', '.join(normal)}"
        )
    known = known if known is not None else vllm_engine_fields()
    if known is not None:
        check_names(normal, known)
    return normal


def add_engine_arg_flags(parser: argparse.ArgumentParser) -> None:
    """`--vllm-arg` and `--vllm-config` on a command that can run engine vllm."""
    parser.add_argument(
        "--vllm-arg",
        action="append",
        default=[],
        dest="vllm_assignments",
        metavar="KEY=VALUE",
        help="an argument of vLLM's engine, as `vllm serve` names it (tensor_parallel_size=2, max_model_len=32768, "
        "quantization=fp8, max_num_seqs=64, kv_cache_dtype=fp8, enforce_eager=true); repeat for several; "
        "overrides --vllm-config. Needs --engine vllm",
    )
    parser.add_argument(
        "--vllm-config", type=Path, default=None, help="a YAML file of vLLM engine arguments (argument: value)"
    )


def engine_args_from(args: argparse.Namespace) -> dict[str, Any]:
    """What `add_engine_arg_flags`' flags hold: the file's arguments, overridden by each `--vllm-arg`."""
    return merge_engine_args(args.vllm_config, args.vllm_assignments)
