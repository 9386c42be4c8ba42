"""Verifier suite, gold vs corrupted (ProcessBench-style first-error task) from GSM8K `solution` fields.

Each problem becomes a pool: the gold solution, one step per episode, plus corrupted copies:
- `number`: one operand of one step's calculation is changed and the change is carried through every
  later step that uses the altered result, so the final answer differs (the corrupted episode is the
  first error);
- `drop`: one non-final step is removed (the first error is the episode that now uses a value no
  step derived).
This tests the dense reward itself, without the generator's weakness. GSM8K calculator annotations
(`<<48/2=24>>`) say which numbers each step computes; problems without them are skipped.
"""

from __future__ import annotations

import ast
import operator
import random
import re
from dataclasses import dataclass
from fractions import Fraction

from l2t_core.eval.problems import Problem

_ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
_NUMBER = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


@dataclass(frozen=True)
class Step:
    text: str  # the step as a reader sees it (annotations removed)
    expression: str | None  # the calculator expression, e.g. "16-3-4"
    result: str | None


@dataclass(frozen=True)
class VerifierCandidate:
    text: str  # the completion: tagged episodes then the boxed answer
    answer: str
    kind: str  # gold | number | drop
    first_error: int | None  # 0-based episode index of the first wrong step (None for gold)


@dataclass(frozen=True)
class VerifierPool:
    problem: Problem
    candidates: list[VerifierCandidate]  # shuffled; exactly one gold

    @property
    def gold_index(self) -> int:
        return next(i for i, c in enumerate(self.candidates) if c.kind == "gold")


def parse_steps(solution: str) -> tuple[list[Step], str] | None:
    """Steps and final answer of a GSM8K solution; None when it has no `####` answer."""
    body, _, final = solution.rpartition("####")
    if not _:
        return None
    steps = []
    for line in body.strip().splitlines():
        if not line.strip():
            continue
        found = _ANNOTATION.search(line)
        text = _ANNOTATION.sub("", line).strip()
        steps.append(Step(text, found.group(1) if found else None, found.group(2).strip() if found else None))
    return steps, final.strip().replace(",", "")


def render(steps: list[Step], answer: str) -> str:
    episodes = "\n".join(f"<episode_{k}>{s.text}</episode_{k}>" for k, s in enumerate(steps, start=1))
    return f"{episodes}\nThe final answer is \\boxed{{{answer}}}."


def evaluate(expression: str) -> Fraction:
    """Exact value of a calculator expression (numbers, + - * /, parentheses); ValueError otherwise."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return Fraction(str(node.value))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return Fraction(_OPS[type(node.op)](walk(node.left), walk(node.right)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError(f"not a calculator expression: {expression!r}")

    try:
        return walk(ast.parse(expression.replace(",", ""), mode="eval"))
    except (SyntaxError, ZeroDivisionError) as exc:
        raise ValueError(f"not a calculator expression: {expression!r}") from exc


def _format(value: Fraction) -> str | None:
    """Integers only: a corrupted value that is not a whole number would read as an obvious typo."""
    return str(value.numerator) if value.denominator == 1 and value >= 0 else None


def _substitute(text: str, mapping: dict[str, str]) -> str:
    return _NUMBER.sub(lambda m: mapping.get(_canonical(m.group(0)), m.group(0)), text)


def _replace_first(text: str, old: str, new: str) -> str:
    """Replace the first number in `text` equal to `old` (commas ignored); unchanged text if none is."""
    for match in _NUMBER.finditer(text):
        if _canonical(match.group(0)) == _canonical(old):
            return text[: match.start()] + new + text[match.end() :]
    return text


def _canonical(number: str) -> str:
    value = Fraction(number.replace(",", ""))
    return str(value.numerator) if value.denominator == 1 else number


def corrupt_number(steps: list[Step], answer: str, rng: random.Random) -> tuple[list[Step], str, int] | None:
    """Change one operand of one computed step and carry the change through; None if no clean corruption."""
    computed = [i for i, s in enumerate(steps) if s.expression]
    if not computed:
        return None
    index = rng.choice(computed)
    step = steps[index]
    assert step.expression is not None and step.result is not None
    operands = _NUMBER.findall(step.expression)
    if not operands:
        return None
    operand = rng.choice(operands)
    old = Fraction(operand)
    new_operand = _format(old + rng.choice([-3, -2, -1, 1, 2, 3, 5, 10])) if old.denominator == 1 else None
    if new_operand is None or new_operand == operand or new_operand == "0":
        return None
    try:
        new_expression = _replace_first(step.expression, operand, new_operand)
        new_result = _format(evaluate(new_expression))
        old_result = _canonical(step.result)
    except (ValueError, ZeroDivisionError):
        return None
    if new_result is None or new_result == old_result:
        return None
    text = _replace_first(step.text, operand, new_operand)
    if text == step.text:  # the prose writes the operand differently: no visible corruption to locate
        return None
    corrupted = [*steps[:index], Step(_substitute(text, {old_result: new_result}), new_expression, new_result)]
    mapping = {old_result: new_result}
    for later in steps[index + 1 :]:
        if later.expression and later.result:
            try:
                expression = _substitute(later.expression, mapping)
                result = _format(evaluate(expression))
            except ValueError:
                return None
            if result is None:
                return None
            before = _canonical(later.result)
            if result != before:
                mapping[before] = result
            corrupted.append(Step(_substitute(later.text, mapping), expression, result))
        else:
            corrupted.append(Step(_substitute(later.text, mapping), later.expression, later.result))
    final = mapping.get(_canonical(answer)) if _NUMBER.fullmatch(answer) else None
    if final is None or final == _canonical(answer):
        return None
    return corrupted, final, index


def drop_step(steps: list[Step], rng: random.Random) -> tuple[list[Step], int] | None:
    """Remove one non-final step whose result a later step uses; the first error is the step after the gap."""
    options = [i for i in range(len(steps) - 1) if steps[i].result and steps[i + 1].text]
    if len(steps) < 3 or not options:
        return None
    index = rng.choice(options)
    return [*steps[:index], *steps[index + 1 :]], index


def verifier_pools(problems: list[Problem], size: int = 8, drops: int = 2, seed: int = 0) -> list[VerifierPool]:
    """A pool of `size` (gold + corrupted) per problem that allows one; problems that do not are skipped."""
    rng = random.Random(seed)
    pools = []
    for problem in problems:
        parsed = parse_steps(problem.solution or "")
        if parsed is None or len(parsed[0]) < 2:
            continue
        steps, answer = parsed
        candidates = [VerifierCandidate(render(steps, answer), answer, "gold", None)]
        seen = {candidates[0].text}
        for _ in range(size * 20):
            if len(candidates) == size:
                break
            want_drop = sum(c.kind == "drop" for c in candidates) < drops and rng.random() < 0.5
            if want_drop:
                dropped = drop_step(steps, rng)
                if dropped is not None:
                    text = render(dropped[0], answer)
                    if text not in seen:
                        seen.add(text)
                        candidates.append(VerifierCandidate(text, answer, "drop", dropped[1]))
                continue
            corrupted = corrupt_number(steps, answer, rng)
            if corrupted is not None:
                text = render(corrupted[0], corrupted[1])
                if text not in seen:
                    seen.add(text)
                    candidates.append(VerifierCandidate(text, corrupted[1], "number", corrupted[2]))
        if len(candidates) < size:
            continue
        rng.shuffle(candidates)
        pools.append(VerifierPool(problem, candidates))
    return pools
