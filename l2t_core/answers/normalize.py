"""Canonical forms of answers: LaTeX and formatting noise removed, numbers as exact fractions."""

from __future__ import annotations

import re
from fractions import Fraction

_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\s*\{?\s*(-?\d+)\s*\}?\s*\{?\s*(-?\d+)\s*\}?$")
_PLAIN_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)(?:e-?\d+)?$")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")
_NOISE = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\displaystyle", "$", "\\$")


def normalize_answer(answer: str) -> str:
    """A canonical string: equal values written differently map to the same string where that is cheap."""
    text = answer.strip()
    for _ in range(3):
        text = _WRAPPERS.sub(r"\1", text)
    for noise in _NOISE:
        text = text.replace(noise, "")
    text = text.replace("^\\circ", "").replace("^{\\circ}", "").replace("°", "")
    text = text.replace("\\%", "").replace("%", "")
    text = re.sub(r"^[a-zA-Z]\s*=\s*", "", text)  # "x = 5" -> "5"
    text = _THOUSANDS.sub("", text)
    text = re.sub(r"\s+", "", text).rstrip(".")
    number = parse_number(text)
    if number is not None:
        return str(number)
    return text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")


def parse_number(text: str) -> Fraction | None:
    """An exact value for plain numbers, `a/b` and `\\frac{a}{b}`; None for anything else."""
    text = text.strip().replace(",", "") if re.fullmatch(r"-?[\d,]+(?:\.\d+)?", text.strip()) else text.strip()
    try:
        if _PLAIN_NUMBER.match(text):
            return Fraction(text)
        m = re.fullmatch(r"(-?\d+)\s*/\s*(-?\d+)", text)
        if m and int(m.group(2)) != 0:
            return Fraction(int(m.group(1)), int(m.group(2)))
        m = _FRAC.match(text)
        if m and int(m.group(3)) != 0:
            value = Fraction(int(m.group(2)), int(m.group(3)))
            return -value if m.group(1) else value
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return None
