"""Models of real models' shapes with random weights, for timing on machines the weights cannot reach
(the GPU box takes a 64 MiB tree; SmolLM2's GGUF is 98 MB). Their texts are noise, their speed is not.

A shape is a folder with a config.json (a model folder without its weights will do), or a built-in
name (`qwen2.5-1.5b`). The tokenizer comes from a folder: a shape's vocabulary is widened to hold it.
`--layers` keeps fewer decoder layers (the same attention and matmul shapes per layer), for dry runs.

    python benchmarks/random_model.py --shape DIR --out DIR [--tokenizer DIR] [--layers N]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, Qwen2Config

BUILT_IN_SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-1.5b": dict(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151936,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
    ),
}


def shape_config(shape: str, vocabulary: int, layers: int | None = None) -> Any:
    """The config of `shape` (a built-in name or a folder), its vocabulary at least `vocabulary` tokens."""
    config = Qwen2Config(**BUILT_IN_SHAPES[shape]) if shape in BUILT_IN_SHAPES else AutoConfig.from_pretrained(shape)
    config.vocab_size = max(config.vocab_size, vocabulary)
    if layers is not None:
        config.num_hidden_layers = layers
        if getattr(config, "layer_types", None):  # a per-layer list, where the config keeps one
            config.layer_types = config.layer_types[:layers]
    return config


def random_causal_lm(config: Any, device: torch.device, dtype: torch.dtype, seed: int = 0) -> Any:
    """A causal LM of `config` with random weights, initialised on `device` (a 1.5B model in seconds on a GPU)."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval().requires_grad_(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", required=True, help="folder with config.json, or " + ", ".join(BUILT_IN_SHAPES))
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder (default: the shape folder)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--layers", type=int, default=None, help="keep this many decoder layers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.shape)
    config = shape_config(args.shape, len(tokenizer), args.layers)
    model = random_causal_lm(config, torch.device("cpu"), torch.float32, args.seed)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters of {config.model_type} -> {args.out}")


if __name__ == "__main__":
    main()
