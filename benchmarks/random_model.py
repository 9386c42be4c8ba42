"""Build a model of a real model's shape with random weights, for timing on machines the weights cannot
reach (the GPU box takes a 64 MiB tree; SmolLM2's GGUF is 98 MB). Its texts are noise, its speed is not.

    python benchmarks/random_model.py --shape DIR --out DIR   # DIR: config.json + tokenizer files
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=Path, required=True, help="folder with config.json and tokenizer files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    config = AutoConfig.from_pretrained(args.shape)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(args.out)
    AutoTokenizer.from_pretrained(args.shape).save_pretrained(args.out)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters of {config.model_type} -> {args.out}")


if __name__ == "__main__":
    main()
