"""Command-line flags derived from config dataclasses, so that a setting is declared once: the dataclass
field holds its type, default and help text (`metadata={"help": …}`, and `"choices"` where a registry
names the values), and `--kebab-name` flags, pydantic fields and the trainer's YAML keys are read from it
(TRL's `HfArgumentParser` idea).

The shared flag groups live here too, beside the derivation they use: the reward flags of `l2t score`,
`l2t generate` and `l2t eval`, built back into one `RewardConfig` by one function, and the prompt format.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Union

from l2t_core.engines.base import SamplingParams
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, PROMPT_FORMATS
from l2t_core.reward import REQUEST_TARGETS, RewardConfig

# The RewardConfig fields a command line may set (the rest are the paper's constants or training's).
REWARD_FLAGS = ("target", "beta", "aggregation", "compression_normalisation", "suffix_probability")
# The SamplingParams fields every sampling command takes (n and seed mean different things per command).
SAMPLING_FLAGS = ("max_tokens", "temperature", "top_p")


def flag_name(name: str) -> str:
    """A field's flag: `max_tokens` → `--max-tokens`."""
    return "--" + name.replace("_", "-")


def _field(cls: type, name: str) -> dataclasses.Field[Any]:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def field_help(cls: type, name: str) -> str:
    """The help text a dataclass field declares, for a pydantic `description` or a flag."""
    return str(_field(cls, name).metadata.get("help", ""))


def inherited(cls: type, name: str, help: str | None = None, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that takes another dataclass's field's default, help and choices (the trainer's
    `temperature` is `SamplingParams.temperature`), with its own help or default where it must differ."""
    source = _field(cls, name)
    metadata = dict(source.metadata)
    if help is not None:
        metadata["help"] = help
    return dataclasses.field(default=source.default if default is dataclasses.MISSING else default, metadata=metadata)


def scalar_type(annotation: Any) -> Any:
    """The scalar a field annotation holds: `int | None` → int; a `Literal` → its values' type."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) != 1:
            raise TypeError(f"a flag takes one type, not {annotation!r}")
        return scalar_type(kinds[0])
    if typing.get_origin(annotation) is typing.Literal:
        return type(args[0])
    return annotation


def literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a `Literal` annotation (inside an optional one too), else None."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = literal_choices(arg)
            if found is not None:
                return found
        return None
    return typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else None


def add_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    name: str,
    annotation: Any,
    default: Any,
    help: str,
    choices: Sequence[Any] | None = None,
    shown_default: Any = None,
) -> None:
    """One `--kebab-name` flag for a typed setting: bool → `--x/--no-x`, int/float/str → typed, choices
    from the registry (or a `Literal`); the help states the default (`shown_default` when the flag's own
    default is None so that an unset flag can be told apart)."""
    kind = scalar_type(annotation)
    choices = choices if choices is not None else literal_choices(annotation)
    shown = default if shown_default is None else shown_default
    text = f"{help} (default {shown})" if help and shown is not None else help
    if kind is bool:
        parser.add_argument(flag_name(name), action=argparse.BooleanOptionalAction, default=default, help=text)
        return
    if kind not in (int, float, str):
        raise TypeError(f"no flag for {name}: {annotation!r}")
    parser.add_argument(
        flag_name(name), type=kind, default=default, choices=list(choices) if choices else None, help=text
    )


def add_dataclass_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    names: Sequence[str] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
    unset: bool = False,
) -> None:
    """A flag per field of `cls` (those in `names`, else all): its type, its default (or `defaults[name]`,
    or None with `unset`, for a caller that layers flags over a file), its `"choices"` metadata (or
    `choices[name]`) and its help text."""
    hints = typing.get_type_hints(cls)
    wanted = set(names) if names is not None else None
    for f in dataclasses.fields(cls):
        if wanted is not None and f.name not in wanted:
            continue
        default = (defaults or {}).get(f.name, f.default)
        add_argument(
            parser,
            f.name,
            hints[f.name],
            None if unset else default,
            str(f.metadata.get("help", "")),
            (choices or {}).get(f.name, f.metadata.get("choices")),
            shown_default=default if unset else None,
        )


def flag_values(args: argparse.Namespace, cls: type, names: Sequence[str] | None = None) -> dict[str, Any]:
    """The fields of `cls` (in `names`, else all) that the parsed flags set (None: left to the default)."""
    wanted = names if names is not None else [f.name for f in dataclasses.fields(cls)]
    return {name: getattr(args, name) for name in wanted if getattr(args, name, None) is not None}


def add_reward_flags(parser: argparse.ArgumentParser) -> None:
    """`--target`, `--beta`, `--aggregation`, `--compression-normalisation`, `--suffix-probability` from
    `RewardConfig` (a target "reference" is implied by a reference answer, so the flag offers the rest)."""
    add_dataclass_flags(parser, RewardConfig, REWARD_FLAGS, choices={"target": REQUEST_TARGETS})


def reward_from_flags(args: argparse.Namespace) -> RewardConfig:
    """The `RewardConfig` the reward flags describe (`InvalidRequest` for a value it refuses)."""
    return RewardConfig(**flag_values(args, RewardConfig, REWARD_FLAGS))


def add_sampling_flags(
    parser: argparse.ArgumentParser, names: Sequence[str] = SAMPLING_FLAGS, defaults: Mapping[str, Any] | None = None
) -> None:
    """Sampling flags from `SamplingParams` (`--max-tokens`, `--temperature`, `--top-p`, …)."""
    add_dataclass_flags(parser, SamplingParams, names, defaults=defaults)


def add_prompt_format(parser: argparse.ArgumentParser, default: str | None = DEFAULT_PROMPT_FORMAT) -> None:
    """`--prompt-format`, its choices and help from the prompt-format registry."""
    parser.add_argument(
        "--prompt-format",
        choices=list(PROMPT_FORMATS),
        default=default,
        help="how the question is asked: " + "; ".join(f"{f.name}: {f.help}" for f in PROMPT_FORMATS.values()),
    )
