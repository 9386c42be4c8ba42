"""Problem generators: graded arithmetic is exact and reproducible; corrupted solutions really are wrong."""

from __future__ import annotations

import re
from typing import Any

import pytest

from l2t_core.answers import extract_answer
from l2t_core.episodes import parse_episodes
from l2t_core.eval.problems import Problem
from l2t_core.eval.tasks.arithmetic import LEVELS, arithmetic_problems
from l2t_core.eval.tasks.verifier import evaluate, parse_steps, verifier_pools


def test_arithmetic_answers_are_exact_and_levels_cycle() -> None:
    problems = arithmetic_problems(60, seed=3)
    assert [p.level for p in problems[:3]] == list(LEVELS)
    for p in problems:
        assert int(p.answer) >= 0
        if p.level in ("add2", "addsub3"):
            expression = re.fullmatch(r"What is (.+)\?", p.question)
            assert expression is not None
            assert evaluate(expression.group(1)) == int(p.answer)
        steps = parse_steps(p.solution or "")
        assert steps is not None and steps[1] == p.answer


def test_arithmetic_is_seeded_and_prefix_stable() -> None:
    assert arithmetic_problems(30, seed=1) == arithmetic_problems(30, seed=1)
    assert arithmetic_problems(10, seed=1) == arithmetic_problems(30, seed=1)[:10]  # caches stay valid
    assert arithmetic_problems(10, seed=1) != arithmetic_problems(10, seed=2)
    with pytest.raises(ValueError, match="level"):
        arithmetic_problems(3, levels=("calculus",))


def test_calculator_expressions_are_evaluated_exactly_and_safely() -> None:
    assert evaluate("16-3-4") == 9
    assert evaluate("(3+5)*2/4") == 4
    for bad in ("__import__('os')", "2**10", "1/0", "x+1"):
        with pytest.raises(ValueError):
            evaluate(bad)


def test_verifier_pools_hold_one_gold_and_truly_corrupted_copies(gsm8k: list[dict[str, Any]]) -> None:
    problems = [Problem(r["id"], r["question"], r["answer"], r["solution"]) for r in gsm8k[:60]]
    pools = verifier_pools(problems, size=8, seed=0)
    assert len(pools) >= 30
    kinds: set[str] = set()
    for pool in pools:
        assert len(pool.candidates) == 8
        assert [c.kind for c in pool.candidates].count("gold") == 1
        gold = pool.candidates[pool.gold_index]
        assert gold.answer.replace(",", "") == pool.problem.answer.replace(",", "")
        assert len({c.text for c in pool.candidates}) == 8
        for c in pool.candidates:
            kinds.add(c.kind)
            parsed = parse_episodes(c.text)
            assert parsed.tagged
            assert extract_answer(c.text) == c.answer
            if c.kind == "number":
                assert c.answer != gold.answer  # carried through to a different final answer
            if c.kind != "gold":
                assert c.first_error is not None and 0 <= c.first_error < len(parsed.episodes)
                gold_episodes = parse_episodes(gold.text).episodes
                # every step before the first error is the gold step, unchanged
                for before in range(c.first_error):
                    assert parsed.episodes[before].text == gold_episodes[before].text
                if c.kind == "number":
                    assert parsed.episodes[c.first_error].text != gold_episodes[c.first_error].text
    assert kinds == {"gold", "number", "drop"}
