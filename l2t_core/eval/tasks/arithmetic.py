"""Graded arithmetic: seeded problems with exact answers at rising difficulty.

The embedded 135M model has almost no signal on GSM8K; these levels put it between "always right"
and "never right" so that reranking has room to help (or to fail visibly):
- `add2`: two-number addition, operands 2–30;
- `addsub3`: three numbers, one addition and one subtraction, never negative;
- `word2`: two-step word problems from templates (buy then give away, rows times items plus extra, …).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from l2t_core.eval.problems import Problem

LEVELS = ("add2", "addsub3", "word2")

_NAMES = ("Tom", "Mia", "Ava", "Leo", "Sam", "Zoe", "Ben", "Ivy")
_ITEMS = ("apples", "marbles", "stickers", "books", "coins", "pencils", "cards", "shells")


def _add2(rng: random.Random) -> tuple[str, int, str]:
    a, b = rng.randint(2, 30), rng.randint(2, 30)
    return f"What is {a} + {b}?", a + b, f"{a} + {b} = {a + b}"


def _addsub3(rng: random.Random) -> tuple[str, int, str]:
    a, b = rng.randint(5, 40), rng.randint(2, 30)
    c = rng.randint(2, a + b - 1)
    return f"What is {a} + {b} - {c}?", a + b - c, f"{a} + {b} = {a + b}\n{a + b} - {c} = {a + b - c}"


def _word2(rng: random.Random) -> tuple[str, int, str]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    form = rng.randrange(3)
    if form == 0:
        a, b = rng.randint(3, 25), rng.randint(2, 20)
        c = rng.randint(1, a + b - 1)
        question = (
            f"{name} has {a} {item}. {name} gets {b} more and then gives away {c}. "
            f"How many {item} does {name} have now?"
        )
        return question, a + b - c, f"{a} + {b} = {a + b}\n{a + b} - {c} = {a + b - c}"
    if form == 1:
        rows, per, extra = rng.randint(2, 6), rng.randint(2, 9), rng.randint(1, 15)
        question = (
            f"{name} puts {item} in {rows} rows of {per}, and has {extra} more left over. "
            f"How many {item} does {name} have?"
        )
        product = rows * per
        return question, product + extra, f"{rows} * {per} = {product}\n{product} + {extra} = {product + extra}"
    price, count = rng.randint(2, 9), rng.randint(2, 6)
    paid = price * count + rng.randint(1, 20)
    question = (
        f"{name} buys {count} {item} that cost {price} dollars each and pays with {paid} dollars. "
        f"How much change does {name} get?"
    )
    change = paid - price * count
    return question, change, f"{count} * {price} = {price * count}\n{paid} - {price * count} = {change}"


_GENERATORS: dict[str, Callable[[random.Random], tuple[str, int, str]]] = {
    "add2": _add2,
    "addsub3": _addsub3,
    "word2": _word2,
}


def arithmetic_problems(count: int, seed: int = 0, levels: tuple[str, ...] = LEVELS) -> list[Problem]:
    """`count` problems cycling through `levels`; the same seed always gives the same problems."""
    unknown = set(levels) - set(_GENERATORS)
    if unknown or not levels:
        raise ValueError(f"unknown arithmetic level(s) {sorted(unknown)}: use some of {LEVELS}")
    rng = random.Random(seed)
    problems = []
    for i in range(count):
        level = levels[i % len(levels)]
        question, answer, solution = _GENERATORS[level](rng)
        problems.append(Problem(f"arith-{seed}-{i:04d}", question, str(answer), f"{solution}\n#### {answer}", level))
    return problems
