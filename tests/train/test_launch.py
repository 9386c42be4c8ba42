"""The launch set-ups the trainer refuses (FSDP, DeepSpeed, engine vllm in several processes), read from
the accelerator's distributed type or from the environment `accelerate launch` sets, and those it runs."""

from __future__ import annotations

import pytest

from l2t_core.train.launch import UnsupportedLaunch, check_launch


@pytest.mark.parametrize(
    ("distributed_type", "environ", "refused"),
    [
        ("DistributedType.FSDP", {}, "FSDP is not supported"),
        # accelerate runs CPU processes under an FSDP config as plain DDP: the launcher's flag still says FSDP
        ("DistributedType.MULTI_CPU", {"ACCELERATE_USE_FSDP": "true"}, "FSDP is not supported"),
        ("DistributedType.DEEPSPEED", {}, "DeepSpeed is not supported"),
        ("DistributedType.MULTI_GPU", {"ACCELERATE_USE_DEEPSPEED": "True"}, "DeepSpeed is not supported"),
    ],
)
def test_sharded_launches_are_refused_naming_what_is_supported(distributed_type, environ, refused):
    with pytest.raises(UnsupportedLaunch, match=refused) as caught:
        check_launch(distributed_type, environ, "transformers", 2)
    assert "DDP" in str(caught.value) and "configs/accelerate/ddp.yaml" in str(caught.value)


def test_vllm_engine_in_several_processes_is_refused():
    with pytest.raises(UnsupportedLaunch, match="engine vllm runs in one process"):
        check_launch("DistributedType.MULTI_GPU", {}, "vllm", 2)


@pytest.mark.parametrize(
    ("distributed_type", "engine", "processes"),
    [
        ("DistributedType.NO", "transformers", 1),
        ("DistributedType.NO", "vllm", 1),
        ("DistributedType.MULTI_GPU", "transformers", 4),
        ("DistributedType.MULTI_CPU", "transformers", 2),
    ],
)
def test_one_process_and_ddp_run(distributed_type, engine, processes):
    check_launch(distributed_type, {"ACCELERATE_USE_FSDP": "false"}, engine, processes)
