"""vLLM engine arguments from `--vllm-arg`, `--vllm-config`, `L2T_VLLM_ARGS` and the trainer's config: parsing,
merging, and the checks by name (against a fixed set of field names here, so they run without vLLM; the
installed vLLM's own fields where it is installed). No engine starts: tests/engines/test_vllm_engine.py
reads the values back from a running one."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings
from l2t_core.engines.engine_args import (
    EngineArgsError,
    checked_engine_args,
    merge_engine_args,
    parse_assignment,
    vllm_engine_fields,
)
from l2t_core.engines.vllm_engine import engine_arguments, vllm_available
from l2t_core.train.config import TrainConfig
from tests.conftest import cli_in_process

# A few of vLLM's AsyncEngineArgs fields, for the checks without vLLM installed.
FIELDS = frozenset(
    {"model", "tokenizer", "enable_prefix_caching", "max_model_len", "max_num_seqs", "enforce_eager", "dtype"}
    | {"tensor_parallel_size", "quantization", "kv_cache_dtype", "gpu_memory_utilization", "seed"}
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_model_len=32768", ("max_model_len", 32768)),
        ("gpu_memory_utilization=0.5", ("gpu_memory_utilization", 0.5)),
        ("enforce_eager=true", ("enforce_eager", True)),
        ("enforce-eager=False", ("enforce_eager", False)),
        ("--max-num-seqs=3", ("max_num_seqs", 3)),
        ("quantization=fp8", ("quantization", "fp8")),
        ("quantization=null", ("quantization", None)),
        ("quantization=", ("quantization", None)),
        ("kv_cache_dtype='auto'", ("kv_cache_dtype", "auto")),
        ("served_model_name=a=b", ("served_model_name", "a=b")),
        ('hf_overrides={"rope_theta": 1000000}', ("hf_overrides", {"rope_theta": 1000000})),
    ],
)
def test_a_value_is_read_as_yaml_and_a_key_as_vllms_field_name(text: str, expected: tuple[str, object]) -> None:
    assert parse_assignment(text) == expected


@pytest.mark.parametrize("text", ["max_model_len", "=4", "max_model_len=[1,"])
def test_a_malformed_assignment_is_refused(text: str) -> None:
    with pytest.raises(EngineArgsError, match="--vllm-arg"):
        parse_assignment(text)


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "vllm.yaml"
    config.write_text("max-model-len: 8192\nmax_num_seqs: 16\nenforce_eager: true\n")
    merged = merge_engine_args(config, ["max_num_seqs=3", "max_model_len=1024", "max_num_seqs=4"])
    assert merged == {"max_model_len": 1024, "max_num_seqs": 4, "enforce_eager": True}
    assert merge_engine_args(None, []) == {}
    (tmp_path / "empty.yaml").write_text("")
    assert merge_engine_args(tmp_path / "empty.yaml", ["seed=3"]) == {"seed": 3}


def test_a_bad_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EngineArgsError, match="cannot read --vllm-config"):
        merge_engine_args(tmp_path / "missing.yaml", [])
    listed = tmp_path / "list.yaml"
    listed.write_text("- max_model_len\n")
    with pytest.raises(EngineArgsError, match="mapping"):
        merge_engine_args(listed, [])
    twice = tmp_path / "twice.yaml"
    twice.write_text("max_model_len: 1\nmax-model-len: 2\n")
    with pytest.raises(EngineArgsError, match="given twice"):
        merge_engine_args(twice, [])


def test_names_are_checked_against_vllms_fields_with_close_matches() -> None:
    assert checked_engine_args("vllm", {"max-model-len": 1024, "max_num_seqs": 3}, FIELDS) == {
        "max_model_len": 1024,
        "max_num_seqs": 3,
    }
    with pytest.raises(EngineArgsError, match=r"'max_model_length' is not an argument.*did you mean max_model_len"):
        checked_engine_args("vllm", {"max_model_length": 1024}, FIELDS)
    with pytest.raises(EngineArgsError, match="'zzz' is not an argument.*vllm serve --help"):
        checked_engine_args("vllm", {"zzz": 1}, FIELDS)


@pytest.mark.parametrize("name", ["model", "tokenizer", "enable_prefix_caching"])
def test_the_keys_l2t_sets_are_refused_with_the_reason(name: str) -> None:
    with pytest.raises(EngineArgsError, match=f"{name!r} is set by l2t"):
        checked_engine_args("vllm", {name: "x"}, FIELDS)


@pytest.mark.parametrize("engine", ["transformers", "openai"])
def test_vllm_arguments_need_the_vllm_engine(engine: str) -> None:
    with pytest.raises(EngineArgsError, match="need --engine vllm.*given: max_model_len"):
        checked_engine_args(engine, {"max_model_len": 1024}, FIELDS)
    assert checked_engine_args(engine, {}, FIELDS) == {}
    assert checked_engine_args(engine, None) == {}


@pytest.mark.vllm
@pytest.mark.skipif(not vllm_available(), reason="vllm is not installed")
def test_the_installed_vllms_fields_are_the_names() -> None:
    fields = vllm_engine_fields()
    assert fields is not None and {"max_model_len", "max_num_seqs", "tensor_parallel_size"} <= fields
    with pytest.raises(EngineArgsError, match="did you mean max_num_seqs"):
        checked_engine_args("vllm", {"max_num_seq": 3})


@pytest.mark.skipif(vllm_available(), reason="vllm is installed")
def test_without_vllm_the_names_go_unchecked_and_the_engine_says_vllm_is_missing() -> None:
    assert vllm_engine_fields() is None
    assert checked_engine_args("vllm", {"max-num-seqs": 3}) == {"max_num_seqs": 3}


def test_what_vllm_is_started_with() -> None:
    """l2t's defaults (eager on a CPU), the caller's over them, the model folder and prefix caching fixed;
    vLLM's defaults for everything else (no max_model_len: the model's own context; its stats on)."""
    assert engine_arguments("/m", True, {}) == {"model": "/m", "enable_prefix_caching": True, "enforce_eager": True}
    started = engine_arguments("/m", True, {"enforce_eager": False, "max_model_len": 1024, "disable_log_stats": True})
    assert started["enforce_eager"] is False and started["max_model_len"] == 1024 and started["disable_log_stats"]
    assert engine_arguments("/m", False, {})["enforce_eager"] is False
    with pytest.raises(EngineArgsError, match="set by l2t"):
        engine_arguments("/m", True, {"model": "/other"})


def test_the_server_reads_l2t_vllm_args(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("L2T_ENGINE", "vllm")
    monkeypatch.setenv("L2T_VLLM_ARGS", '{"max-model-len": 1024, "max_num_seqs": 3}')
    assert Settings().vllm_args == {"max_model_len": 1024, "max_num_seqs": 3}
    # `l2t serve`'s flags override the variable's arguments one by one
    flagged = Settings(vllm_args={"enforce_eager": True, "max_num_seqs": 4}).vllm_args
    assert flagged == {"max_model_len": 1024, "max_num_seqs": 4, "enforce_eager": True}
    monkeypatch.setenv("L2T_ENGINE", "transformers")
    with pytest.raises(ValidationError, match="need --engine vllm"):
        Settings()
    monkeypatch.delenv("L2T_VLLM_ARGS")
    assert Settings().vllm_args == {}


def test_serve_generate_and_eval_refuse_vllm_arguments_for_another_engine(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from app.cli import main as app_main

    capsys.readouterr()
    assert app_main(["serve", "--vllm-arg", "max_model_len=1024"]) == 2
    assert "need --engine vllm" in capsys.readouterr().err
    code, _, err = cli_in_process(["generate", "What is 2 + 3?", "--vllm-arg", "max_model_len=1024"], capsys)
    assert code == 2 and "need --engine vllm" in err
    code, _, err = cli_in_process(["generate", "What is 2 + 3?", "--engine", "vllm", "--vllm-arg", "oops"], capsys)
    assert code == 2 and "KEY=VALUE" in err
    evaluate = ["eval", "--data", "arithmetic", "--out", str(tmp_path), "--vllm-config", str(tmp_path / "none.yaml")]
    code, _, err = cli_in_process(evaluate, capsys)
    assert code == 2 and "cannot read --vllm-config" in err


def test_the_trainer_takes_vllm_arguments_from_yaml_and_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("engine: vllm\nvllm_args:\n  max-model-len: 4096\n  max_num_seqs: 16\n")
    vllm_file = tmp_path / "vllm.yaml"
    vllm_file.write_text("max_num_seqs: 8\nenforce_eager: true\n")
    flags = ["--config", str(config), "--vllm-config", str(vllm_file), "--vllm-arg", "max_model_len=1024"]
    loaded = TrainConfig.from_args(flags)
    assert loaded.vllm_args == {"max_model_len": 1024, "max_num_seqs": 8, "enforce_eager": True}
    assert TrainConfig.from_args(["--config", str(config)]).vllm_args == {"max_model_len": 4096, "max_num_seqs": 16}
    with pytest.raises(SystemExit):
        TrainConfig.from_args(["--vllm-arg", "max_model_len=1024"])  # the default engine is transformers
    assert "need --engine vllm" in capsys.readouterr().err
    with pytest.raises(ValueError, match="need --engine vllm"):
        TrainConfig(vllm_args={"max_model_len": 1024})
