"""One entry point, `load_model`, for every way a user names a model.

`None`/"default" is the embedded SmolLM2 GGUF; a path is a local HF folder (or a .gguf file); anything
else is a HF hub id that must already be in the local cache (we never download at run time).
Every failure becomes a `ModelLoadError` whose message says what to do, not a traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from l2t_core.models.default_gguf import DefaultModelMissing, ensure_dequantised, find_default_gguf

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message is meant for the user."""


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel (causal LM), in eval mode; None when only the tokenizer was read
    tokenizer: Any  # its tokenizer
    name: str  # what the user asked for ("default", a path, an id)
    path: str  # the folder the weights were read from
    device: torch.device
    dtype: torch.dtype


def context_length(model: Any) -> int | None:
    """A transformers model's trained context (`max_position_embeddings`, or GPT-2's `n_positions`)."""
    return config_context_length(getattr(model, "config", None))


def config_context_length(config: Any) -> int | None:
    """The trained context a transformers config states."""
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def configured_context_length(loaded: LoadedModel) -> int | None:
    """The model's trained context, from its weights' config or, where only the tokenizer was read, from
    the folder's config.json (no weights loaded)."""
    if loaded.model is not None:
        return context_length(loaded.model)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(loaded.path, local_files_only=True)
    except (OSError, ValueError):
        return None
    return config_context_length(config)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but torch sees no CUDA device")
    return resolved


def _resolve_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def _locate(name: str) -> tuple[str, bool]:
    """Map the user's name to (folder or id, local_only) after converting any GGUF file."""
    if name in ("", DEFAULT_MODEL):
        try:
            return str(ensure_dequantised(find_default_gguf())), True
        except DefaultModelMissing as exc:
            raise ModelLoadError(str(exc)) from exc
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {path} does not exist")
        return str(ensure_dequantised(path.resolve())), True
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a model folder: it has no config.json")
        return str(path.resolve()), True
    if name.startswith((".", "/", "~")):
        raise ModelLoadError(f"model folder {path} does not exist")
    return name, True


def load_model(
    name: str | None = None, device: str = "auto", dtype: str = "float32", weights: bool = True
) -> LoadedModel:
    """Load a causal LM and its tokenizer for generation and scoring (eval mode, no grads on weights).
    `weights=False` reads the tokenizer only (`model` is None): see `load_models`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = name or DEFAULT_MODEL
    torch_device = resolve_device(device)
    torch_dtype = _resolve_dtype(dtype)
    try:
        where, local_only = _locate(name)
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local_only)
        model = (
            AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype, local_files_only=local_only)
            if weights
            else None
        )
    except ModelLoadError:
        raise
    except OSError as exc:
        raise ModelLoadError(
            f"could not load model {name!r}: not a local folder and not in the local HF cache "
            f"(nothing is downloaded at run time). Details: {str(exc).splitlines()[0]}"
        ) from exc
    except Exception as exc:  # corrupt weights, bad config, unsupported architecture
        raise ModelLoadError(f"could not load model {name!r}: {type(exc).__name__}: {exc}") from exc
    if model is not None:
        model.to(torch_device)  # type: ignore[arg-type]  # transformers stubs mistype Module.to
        model.eval()
        model.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    logger.info(
        "loaded %s from %s on %s (%s)", name if weights else f"{name} (tokenizer only)", where, torch_device, dtype
    )
    return LoadedModel(model, tokenizer, name, where, torch_device, torch_dtype)


def load_models(
    model: str | None,
    scorer_model: str | None = None,
    device: str = "auto",
    scorer_device: str | None = None,
    dtype: str = "float32",
    generates_here: bool = True,
    scores_here: bool = True,
) -> tuple[LoadedModel, LoadedModel | None]:
    """The generator's model and, when `scorer_model` names one, the model that scores what it generates,
    loaded separately (on `scorer_device`, by default `device`). A generator that runs elsewhere
    (`generates_here=False`: vLLM loads its own copy, a remote server has one) is then needed here only
    for its tokenizer and chat template, so its weights are not read: they would sit unused. Likewise
    when nothing scores here either (`scores_here=False`: the engine scores, scorer=engine)."""
    if scorer_model is None:
        if scorer_device is not None:
            raise ModelLoadError(f"a scorer device ({scorer_device}) is set but no scorer model: set both or neither")
        return load_model(model, device, dtype, weights=generates_here or scores_here), None
    scorer = load_model(scorer_model, scorer_device or device, dtype)
    return load_model(model, device, dtype, weights=generates_here), scorer
