"""Settings declared once: flags, pydantic request fields and the trainer's config read their defaults,
help and choices from the dataclasses, and the flags → RewardConfig mapping is one function."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from typing import Any

import pytest

from app.generate.protocol import GenerateRequest
from app.schemas import RewardOverrides
from l2t_core.cli import build_parser
from l2t_core.config_flags import (
    REWARD_FLAGS,
    SAMPLING_FLAGS,
    add_dataclass_flags,
    field_help,
    flag_values,
    inherited,
    reward_from_flags,
)
from l2t_core.engines import ENGINES, SamplingParams
from l2t_core.errors import InvalidRequest
from l2t_core.reward import AGGREGATIONS, REQUEST_TARGETS, RewardConfig
from tests.conftest import cli_in_process


def subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "What is 2 + 3?"],
        ["score", "--question", "q", "--completion-file", "c.txt"],
        ["eval", "--data", "arithmetic", "--out", "out"],
    ],
)
def test_flag_defaults_are_the_dataclass_defaults(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert reward_from_flags(args) == RewardConfig()
    for name in REWARD_FLAGS:
        assert getattr(args, name) == getattr(RewardConfig, name)
    if argv[0] != "score":
        assert (args.temperature, args.top_p) == (SamplingParams.temperature, SamplingParams.top_p)
    if argv[0] == "generate":
        assert args.max_tokens == SamplingParams.max_tokens and args.seed is None


def test_reward_flags_build_the_reward_config_in_every_command() -> None:
    flags = ["--beta", "0.25", "--aggregation", "mean", "--target", "consensus", "--suffix-probability", "string"]
    flags += ["--compression-normalisation", "per_token"]
    expected = RewardConfig(
        beta=0.25,
        aggregation="mean",
        target="consensus",
        suffix_probability="string",
        compression_normalisation="per_token",
    )
    parser = build_parser()
    for argv in (["generate", "q"], ["eval", "--data", "arithmetic", "--out", "o"]):
        assert reward_from_flags(parser.parse_args([*argv, *flags])) == expected


def test_flag_choices_and_help_come_from_the_registries() -> None:
    parser = build_parser()
    generate, evaluate = subcommand(parser, "generate"), subcommand(parser, "eval")
    assert option(generate, "--aggregation").choices == list(AGGREGATIONS)
    assert option(generate, "--target").choices == list(REQUEST_TARGETS)
    assert option(evaluate, "--engine").choices == ENGINES
    temperature = option(evaluate, "--temperature")
    assert temperature.type is float and field_help(SamplingParams, "temperature") in str(temperature.help)
    assert f"(default {SamplingParams.temperature})" in str(temperature.help)


def test_a_refused_flag_value_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli_in_process(["generate", "What is 2 + 3?", "--beta", "-1"], capsys)
    assert code == 2 and "beta must be >= 0" in err and "Traceback" not in err
    with pytest.raises(InvalidRequest, match="top_p"):
        SamplingParams(**flag_values(build_parser().parse_args(["generate", "q", "--top-p", "0"]), SamplingParams))


def test_request_fields_take_the_dataclass_defaults() -> None:
    fields = GenerateRequest.model_fields
    for name in SAMPLING_FLAGS:
        assert fields[name].default == getattr(SamplingParams, name)
        assert fields[name].description == field_help(SamplingParams, name)
    assert RewardOverrides.model_fields["target"].default == RewardConfig.target
    assert RewardOverrides.model_fields["beta"].description == field_help(RewardConfig, "beta")


def test_derived_flags_cover_types_optionals_and_bools() -> None:
    @dataclasses.dataclass
    class Example:
        count: int = dataclasses.field(default=3, metadata={"help": "how many"})
        limit: float | None = dataclasses.field(default=None, metadata={"help": "a cap"})
        fast: bool = dataclasses.field(default=False, metadata={"help": "go fast"})
        mode: str = dataclasses.field(default="a", metadata={"help": "which", "choices": ("a", "b")})
        temperature: float = inherited(SamplingParams, "temperature", "rollout temperature")

    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, Example)
    assert flag_values(parser.parse_args([]), Example) == {"count": 3, "fast": False, "mode": "a", "temperature": 0.8}
    given = parser.parse_args(["--count", "5", "--limit", "0.5", "--fast", "--mode", "b"])
    assert Example(**flag_values(given, Example)) == Example(5, 0.5, True, "b")
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "c"])
    unset = argparse.ArgumentParser()
    add_dataclass_flags(unset, Example, ["count"], unset=True)
    assert unset.parse_args([]).count is None and "(default 3)" in str(option(unset, "--count").help)
    fields: dict[str, Any] = {f.name: f for f in dataclasses.fields(Example)}
    assert fields["temperature"].default == SamplingParams.temperature
    assert fields["temperature"].metadata["help"] == "rollout temperature"


def test_the_library_command_and_the_evaluation_command_do_not_import_each_other() -> None:
    check = "import sys, l2t_core.eval.command; assert 'l2t_core.cli' not in sys.modules, 'l2t_core.cli imported'"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
