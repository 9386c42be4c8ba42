"""Which `accelerate launch` set-ups the trainer runs under, refused with the reason before anything loads.

Every process rolls out and scores its own questions through the policy module itself (the transformers
engine on the unwrapped model, the scorer on the same weights), so each process must be able to run a
forward pass on its own: one process, or DDP (a full replica per process, gradients averaged), on GPUs or
on CPU processes joined by gloo. FSDP shards the parameters, so every forward is a collective that all
processes enter in step; rollouts of different lengths on different ranks would wait on each other
forever, and the reference copy and the scorer's snapshot assume whole weights. DeepSpeed is not
supported either: accelerate's DeepSpeed path steps the optimiser inside `backward` and ZeRO-2/3 forbid
the `no_sync` the micro-batches of `grad_accum` use; ZeRO-3 shards the parameters as FSDP does.

accelerate never applies FSDP or DeepSpeed to CPU processes: under an FSDP config with `use_cpu` it runs
plain DDP without a word. The launcher's intent is therefore read from the environment it sets
(`ACCELERATE_USE_FSDP`, `ACCELERATE_USE_DEEPSPEED`) as well as from the accelerator's distributed type.
"""

from __future__ import annotations

from collections.abc import Mapping

SUPPORTED = (
    "the trainer runs in one process or under DDP (accelerate launch --multi_gpu, or "
    "--config_file configs/accelerate/ddp.yaml on GPUs / configs/accelerate/cpu_2proc.yaml on CPU processes)"
)


class UnsupportedLaunch(ValueError):
    """An `accelerate launch` set-up the trainer cannot train under; the message names what it supports."""


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "false").lower() == "true"  # as accelerate itself reads its launcher's flags


def check_launch(distributed_type: str, environ: Mapping[str, str], engine: str, num_processes: int) -> None:
    """Raise `UnsupportedLaunch` for FSDP, DeepSpeed, or engine vllm in more than one process.

    `distributed_type` is the accelerator's (`str(accelerator.distributed_type)`, e.g. "DistributedType.FSDP"),
    `environ` the process environment the launcher set."""
    kind = distributed_type.rsplit(".", 1)[-1]
    if kind == "FSDP" or _flag(environ, "ACCELERATE_USE_FSDP"):
        raise UnsupportedLaunch(
            "FSDP is not supported: it shards the policy, so every rollout forward becomes a collective that "
            f"all processes must enter in step; {SUPPORTED}"
        )
    if kind == "DEEPSPEED" or _flag(environ, "ACCELERATE_USE_DEEPSPEED"):
        raise UnsupportedLaunch(
            "DeepSpeed is not supported: ZeRO-2/3 forbid the no_sync that grad_accum relies on and ZeRO-3 shards "
            f"the policy the rollouts run on; {SUPPORTED}"
        )
    if engine == "vllm" and num_processes > 1:
        raise UnsupportedLaunch(
            "engine vllm runs in one process for now (every rank would start its own vLLM on the same "
            f"device); use the transformers engine under accelerate launch ({SUPPORTED})"
        )
