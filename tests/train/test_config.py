"""The trainer's config: the settings it shares with serving have serving's defaults, its flags are
derived from its fields, and its default data resolves from L2T_DATA_DIR with an error that names it."""

from __future__ import annotations

import dataclasses

import pytest

from app.core.config import Settings
from l2t_core.engines import SamplingParams
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT
from l2t_core.eval.problems import DataError
from l2t_core.reward import RewardConfig
from l2t_core.train import TrainConfig
from l2t_core.train.data import load_split
from tests.conftest import DATA_DIR


def test_the_trainer_prompts_as_the_server_does(monkeypatch):
    monkeypatch.delenv("L2T_PROMPT_FORMAT", raising=False)
    assert TrainConfig().prompt_format == DEFAULT_PROMPT_FORMAT == Settings().prompt_format
    assert TrainConfig.from_args([]).prompt_format == DEFAULT_PROMPT_FORMAT


def test_shared_settings_take_serving_defaults():
    config = TrainConfig()
    assert (config.temperature, config.top_p) == (SamplingParams.temperature, SamplingParams.top_p)
    assert (config.alpha, config.beta) == (RewardConfig.alpha, RewardConfig.beta)
    assert config.suffix_probability == RewardConfig.suffix_probability
    assert config.delta_mode == "drift" != RewardConfig.delta_mode  # training measures drift from W_ref


def test_every_field_is_a_flag_with_its_default_unless_given():
    assert TrainConfig.from_args([]) == TrainConfig()
    parsed = TrainConfig.from_args(["--temperature", "0.5", "--delta-mode", "step", "--no-lora", "--steps", "3"])
    assert (parsed.temperature, parsed.delta_mode, parsed.lora, parsed.steps) == (0.5, "step", False, 3)
    for bad in (["--delta-mode", "sideways"], ["--prompt-format", "fancy"], ["--engine", "openai"]):
        with pytest.raises(SystemExit):
            TrainConfig.from_args(bad)
    assert {f.name for f in dataclasses.fields(TrainConfig)} >= {"temperature", "top_p", "alpha", "beta"}


def test_default_data_is_read_from_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("L2T_DATA_DIR", str(DATA_DIR))
    train, held_back = load_split(TrainConfig().data, 0.1, (), 0)
    assert len(train) + len(held_back) == sum(
        1 for line in (DATA_DIR / "gsm8k_test.jsonl").read_text().splitlines() if line.strip()
    )
    monkeypatch.setenv("L2T_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="L2T_DATA_DIR") as refused:
        load_split(TrainConfig().data, 0.1, (), 0)
    assert str(tmp_path / "nowhere") in str(refused.value)
