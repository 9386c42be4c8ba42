"""Final answers: extraction from free text and equivalence checking that never hangs or raises."""

from l2t_core.answers.equivalence import answers_match
from l2t_core.answers.extract import extract_answer
from l2t_core.answers.normalize import normalize_answer, parse_number

__all__ = ["answers_match", "extract_answer", "normalize_answer", "parse_number"]
