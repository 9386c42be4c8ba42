"""Are two answers the same value? Cheap canonical comparison first, then symbolic with a hard time limit.

The symbolic check uses `math-verify` (sympy underneath), which can run for a very long time on
adversarial input. Its own timeout relies on `signal.alarm`, which only works in the main thread, so
we run it in a daemon thread and stop waiting after `timeout_s`: grading never hangs the caller,
even inside a server's worker threads. A comparison that times out or fails counts as "not equal".
The library (sympy and a LaTeX parser, seconds to import on a loaded machine) is imported by the
caller before the clock starts, so the first comparison of a process is not timed out by the import.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

from l2t_core.answers.normalize import normalize_answer, parse_number

logger = logging.getLogger(__name__)

MAX_SYMBOLIC_CHARS = 400  # longer answers are compared as canonical strings only


def answers_match(predicted: str | None, reference: str | None, timeout_s: float = 2.0) -> bool:
    if predicted is None or reference is None:
        return False
    try:
        a, b = normalize_answer(predicted), normalize_answer(reference)
        if a == b:
            return True
        na, nb = parse_number(a), parse_number(b)
        if na is not None and nb is not None:
            return na == nb
        if not a or not b or max(len(a), len(b)) > MAX_SYMBOLIC_CHARS:
            return False
        return _symbolic_match(predicted, reference, timeout_s)
    except Exception:  # grading must never raise on model output
        logger.debug("answer comparison failed for %r vs %r", predicted, reference, exc_info=True)
        return False


@cache
def _math_verify() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """math-verify's (parse, verify), imported once, outside any time limit."""
    import math_verify.grader
    import math_verify.parser
    from math_verify import parse, verify

    # We enforce the time limit ourselves (below), so its "timeout disabled" warning is noise.
    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    return parse, verify


def _symbolic_match(predicted: str, reference: str, timeout_s: float) -> bool:
    result: list[bool] = []
    parse, verify = _math_verify()

    def work() -> None:
        try:
            gold = parse(f"${reference}$", parsing_timeout=None)
            pred = parse(f"${predicted}$", parsing_timeout=None)
            result.append(bool(gold) and bool(pred) and bool(verify(gold, pred, timeout_seconds=None)))
        except Exception:
            result.append(False)

    worker = threading.Thread(target=work, name="l2t-answer-verify", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        logger.warning("symbolic answer check timed out after %.1fs", timeout_s)
        return False
    return bool(result and result[0])
