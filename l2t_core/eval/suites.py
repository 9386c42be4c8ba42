"""Suite names and data files → problems, with the tune/test halves."""

from __future__ import annotations

import os
from pathlib import Path

from l2t_core.eval.problems import DataError, Problem, load_jsonl
from l2t_core.eval.tasks.arithmetic import arithmetic_problems

GENERATED = ("arithmetic",)
FILES = {"gsm8k": "gsm8k_test.jsonl", "math500": "math500.jsonl", "verifier": "gsm8k_test.jsonl"}
SUITES = GENERATED + tuple(FILES)
SPLITS = ("all", "tune", "test")


def data_dir() -> Path:
    """`$L2T_DATA_DIR`, else `../shared/data` (the checkout sits beside `shared/`)."""
    return Path(os.environ.get("L2T_DATA_DIR", "../shared/data"))


def suite_file(name: str) -> Path:
    """The data file of a file-backed suite (`gsm8k`, `math500`, …), which must exist under `data_dir()`."""
    path = data_dir() / FILES[name]
    if not path.is_file():
        where = "L2T_DATA_DIR" if "L2T_DATA_DIR" in os.environ else "the default ../shared/data (L2T_DATA_DIR unset)"
        raise DataError(
            f"data set {name!r} reads {path}, which does not exist: set L2T_DATA_DIR to the folder that holds "
            f"{FILES[name]} (the folder now comes from {where})"
        )
    return path


def suite_name(data: str) -> str:
    return data if data in SUITES else Path(data).stem


def load_suite(data: str, limit: int | None, seed: int) -> list[Problem]:
    """A suite name or a jsonl path; `limit` takes the first problems (generated suites make exactly that many)."""
    if data == "arithmetic":
        return arithmetic_problems(limit or 300, seed)
    if data in FILES:
        path = suite_file(data)
    elif data.endswith(".jsonl"):
        path = Path(data)
    else:
        raise DataError(f"unknown suite {data!r}: use one of {SUITES} or a .jsonl file")
    problems = load_jsonl(path)
    return problems[:limit] if limit else problems


def split(problems: list[Problem], which: str) -> list[Problem]:
    """Alternate problems into halves: `tune` (even positions) and `test` (odd), disjoint and stable."""
    if which == "all":
        return problems
    if which not in SPLITS:
        raise DataError(f"unknown split {which!r}: use one of {SPLITS}")
    return problems[0 if which == "tune" else 1 :: 2]
