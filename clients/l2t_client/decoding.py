"""JSON to typed dataclasses, driven by the dataclasses' own annotations (no per-class parsing code).

The generated types (types.py) and the stream chunks (chunks.py) only declare fields; `decode` walks
their type hints. Fields a newer server adds are ignored, so an older client keeps working; with
`strict=True` they are an error instead, which is how tests prove the client knows every field the
server sends. A missing required field or a value of the wrong type is always an error.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping
from typing import Any, Literal, Self, Union, get_args, get_origin, get_type_hints


class SchemaMismatch(ValueError):
    """A response does not have the shape the client's types declare (a client older or newer than the server)."""


class Model:
    """Base of every response type: `from_json` builds one from the parsed JSON body."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], strict: bool = False) -> Self:
        model: Self = decode(cls, data, strict)
        return model


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def decode(kind: Any, value: Any, strict: bool = False, path: str = "") -> Any:
    """`value` (parsed JSON) as an instance of the type `kind`; `path` names the place in errors."""
    where = path or getattr(kind, "__name__", str(kind))
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return _decode_dataclass(kind, value, strict, where)
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        return _decode_union(get_args(kind), value, strict, where)
    if origin is list:
        if not isinstance(value, list):
            raise SchemaMismatch(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = get_args(kind)
        return [decode(item, v, strict, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaMismatch(f"{where}: expected an object, got {type(value).__name__}")
        _, item = get_args(kind)
        return {k: decode(item, v, strict, f"{where}.{k}") for k, v in value.items()}
    if origin is Literal:
        if value not in get_args(kind):
            raise SchemaMismatch(f"{where}: expected one of {get_args(kind)}, got {value!r}")
        return value
    return _decode_scalar(kind, value, where)


def _decode_dataclass(kind: type, value: Any, strict: bool, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise SchemaMismatch(f"{where}: expected an object, got {type(value).__name__}")
    hints = _hints(kind)
    fields = {f.name: f for f in dataclasses.fields(kind)}
    if strict and (unknown := sorted(set(value) - set(fields))):
        raise SchemaMismatch(f"{where}: fields the client does not know: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = decode(hints[name], value[name], strict, f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SchemaMismatch(f"{where}: required field {name!r} is missing")
    return kind(**kwargs)


def _decode_union(options: tuple[Any, ...], value: Any, strict: bool, where: str) -> Any:
    if value is None and type(None) in options:
        return None
    failures = []
    for option in options:
        if option is type(None):
            continue
        try:
            return decode(option, value, strict, where)
        except SchemaMismatch as exc:
            failures.append(str(exc))
    raise SchemaMismatch(" / ".join(failures) or f"{where}: got {value!r}")


def _decode_scalar(kind: Any, value: Any, where: str) -> Any:
    if kind is Any:
        return value
    if kind is type(None):
        if value is not None:
            raise SchemaMismatch(f"{where}: expected null, got {value!r}")
        return None
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)  # JSON has one number type: 1 is a valid float
    if kind in (int, str, bool) and isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise SchemaMismatch(f"{where}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
