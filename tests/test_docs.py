"""The docs stay honest about the code: registry tables name every prompt format and strategy the code
declares, links and cited paths resolve, and no page speaks in issue or session numbers (docs drift otherwise)."""

import re
from pathlib import Path

from l2t_core.episodes import PROMPT_FORMATS
from l2t_core.search import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
# Where code, tests, scripts and pages may name a doc or a report by its path.
CITING = [*PAGES, ROOT / "Dockerfile", ROOT / "pyproject.toml"] + [
    path
    for folder in ("l2t_core", "app", "clients", "benchmarks", "tests", ".ci")
    for path in (ROOT / folder).rglob("*")
    if path.is_file() and (path.suffix in {".py", ".sh", ".md", ".toml"} or path.name == "run")
]
# A doc page or report named by its path, and the root pages (present, or once present and moved to docs/).
CITED = re.compile(r"(?<![\w/.-])(docs/[\w./-]*\.md|(?:README|EVAL|TRAINING|BENCHMARKS)\.md)")


def _table_names(text: str) -> set[str]:
    """The backticked name opening each table row (`| `name` …`)."""
    return {line.split("`")[1] for line in text.splitlines() if line.startswith("| `")}


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def test_readme_lists_every_prompt_format_and_strategy() -> None:
    named = _table_names(README)
    assert set(PROMPT_FORMATS) <= named, set(PROMPT_FORMATS) - named
    assert set(STRATEGIES) <= named, set(STRATEGIES) - named


def test_strategies_page_lists_every_strategy_and_synonym() -> None:
    text = (ROOT / "docs" / "strategies.md").read_text()
    named = _table_names(text)
    assert set(STRATEGIES) <= named, set(STRATEGIES) - named
    synonyms = {synonym for strategy in STRATEGIES.values() for synonym in strategy.synonyms}
    missing = {synonym for synonym in synonyms if f"`{synonym}`" not in text or f"`{synonym}`" not in README}
    assert not missing, missing


def test_evaluation_page_measures_every_prompt_format() -> None:
    named = _table_names((ROOT / "docs" / "evaluation.md").read_text())
    assert set(PROMPT_FORMATS) <= named, set(PROMPT_FORMATS) - named


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_every_cited_doc_or_report_exists() -> None:
    missing = []
    for path in CITING:
        for cited in CITED.findall(path.read_text()):
            if not (ROOT / cited).exists():
                missing.append(f"{path.relative_to(ROOT)}: {cited}")
    assert not missing, missing


def test_pages_speak_of_what_holds_not_of_issues_or_sessions() -> None:
    found = [
        f"{page.relative_to(ROOT)}:{number}: {line.strip()}"
        for page in [*PAGES, *(ROOT / "docs" / "results").rglob("*.md")]
        for number, line in enumerate(page.read_text().splitlines(), 1)
        if re.search(r"[Ii]ssue [0-9]+|[Ss]ession [0-9]+", line)
    ]
    assert not found, found
