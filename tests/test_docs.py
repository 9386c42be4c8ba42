"""The README's registry tables name every prompt format and strategy the code declares (docs drift otherwise)."""

from pathlib import Path

from l2t_core.episodes import PROMPT_FORMATS
from l2t_core.search import STRATEGIES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_lists_every_prompt_format_and_strategy() -> None:
    table_rows = [line for line in README.splitlines() if line.startswith("| `")]
    named = {line.split("`")[1] for line in table_rows}
    assert set(PROMPT_FORMATS) <= named, set(PROMPT_FORMATS) - named
    assert set(STRATEGIES) <= named, set(STRATEGIES) - named
