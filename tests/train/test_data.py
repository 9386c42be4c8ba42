"""Training data: the arithmetic source is seeded, disjoint from the evaluation suite, and level-selectable."""

from __future__ import annotations

import pytest

from l2t_core.eval.suites import load_suite
from l2t_core.eval.tasks.arithmetic import arithmetic_problems
from l2t_core.train import TrainConfig
from l2t_core.train.data import EVAL_RESERVE, TRAIN_SEED_STREAM, TRAIN_SIZE, arithmetic_split, load_split


def test_arithmetic_training_problems_never_meet_the_evaluation_suite():
    train, held_back = load_split("arithmetic", 0.1, ("add2", "addsub3", "word2"), seed=0)
    evaluation = load_suite("arithmetic", EVAL_RESERVE, seed=0)  # what `python -m l2t_core.eval` scores
    assert {e.question for e in train}.isdisjoint({p.question for p in evaluation})
    assert [e.question for e in held_back] == [p.question for p in evaluation]  # held back = the eval suite
    assert len(train) > 10_000  # plenty left after the exclusion
    # The exclusion is needed: the same generator on the training stream does produce evaluation questions
    # (add2 has only 29² distinct ones), they are removed, not merely unlikely.
    raw = {p.question for p in arithmetic_problems(TRAIN_SIZE, TRAIN_SEED_STREAM, ("add2",))}
    assert raw & {p.question for p in evaluation}


def test_arithmetic_source_is_seeded_and_level_selectable():
    a, held_a = arithmetic_split(("add2",), seed=1)
    b, held_b = arithmetic_split(("add2",), seed=1)
    c, held_c = arithmetic_split(("add2",), seed=2)
    assert a == b and a != c
    assert held_a == held_c  # the evaluation set does not move with the training seed
    assert all(e.question.startswith("What is ") and e.question.count("+") == 1 for e in a + held_a)
    assert all("-" not in e.question for e in a)
    assert len(held_a) == EVAL_RESERVE // 3 + 1  # every third problem of the suite is add2


def test_arithmetic_levels_are_validated():
    assert TrainConfig(data="arithmetic", arithmetic_levels="add2, word2").levels == ("add2", "word2")
    with pytest.raises(ValueError, match="arithmetic_levels"):
        TrainConfig(data="arithmetic", arithmetic_levels="calculus")
