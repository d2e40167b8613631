"""The documentation holds together: links resolve, the README stays short, and code cites
only sections of docs/design.md that exist (docs/design.md §2: never a file outside the
repository)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
#: the folders whose code may cite the design (mgap/ holds links to engine/, store/, tui/)
CODE_DIRS = ("mgap", "engine", "store", "tui", "tests", "benchmarks", ".ci")

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`[^`]*`")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CITATION = re.compile(r"docs/design\.md §(\d+)")


def prose_lines(text: str) -> list[str]:
    """The lines of a markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of `page`, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    """The targets of the relative links of `page` (not web links, not code)."""
    targets = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):
                targets.append(target)
    return targets


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            problems.append(f"{page.name}: {target} (no file {path_part})")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{page.name}: {target} (no heading #{anchor} in {linked.name})")
    return problems


def code_files() -> list[Path]:
    """Every source file under CODE_DIRS once (the links under mgap/ are not followed)."""
    files = {REPO / "pyproject.toml"}
    for name in CODE_DIRS:
        for path in (REPO / name).rglob("*"):
            if (path.suffix in {".py", ".sh", ".toml"} or path.parent.name == ".ci") and (
                path.is_file()
            ):
                real = path.resolve()
                if REPO / "tests" / "__snapshots__" not in real.parents:
                    files.add(real)
    return sorted(files)


def test_the_docs_exist():
    names = {page.name for page in PAGES}
    for name in (
        "commands.md",
        "models-and-datasets.md",
        "metrics.md",
        "large-stores.md",
        "store-format.md",
        "guarantees.md",
        "tui.md",
        "development.md",
        "design.md",
    ):
        assert name in names, f"docs/{name} is missing"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page) == []


def test_the_checker_finds_a_broken_link_and_a_broken_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# Top\n\n## Two words (`x`)\n", encoding="utf-8")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md#two-words-x) [self](#here) [web](https://example.org/x.md)\n"
        "## Here\n```\n[in code](missing.md)\n```\n"
        "[gone](missing.md) [bad anchor](a.md#three) `[code](nope.md)`\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "b.md: missing.md (no file missing.md)",
        "b.md: a.md#three (no heading #three in a.md)",
    ]


def test_the_readme_is_at_most_200_lines():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"


def test_the_readme_links_every_docs_page():
    linked = {Path(t.partition("#")[0]).name for t in relative_links(REPO / "README.md")}
    missing = {page.name for page in PAGES[1:]} - linked
    assert not missing, f"README.md does not link {sorted(missing)}"


def test_code_cites_the_design_only_as_docs_design_md():
    offenders = []
    for path in code_files():
        if path == Path(__file__).resolve():
            continue  # this file names the page itself
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            bare = re.sub(r"docs/design\.md", "", line, flags=re.IGNORECASE)
            if re.search(r"design\.md", bare, flags=re.IGNORECASE):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


def test_every_cited_design_section_exists():
    sections = {
        int(match.group(1))
        for line in prose_lines((DOCS / "design.md").read_text(encoding="utf-8"))
        if (match := re.match(r"##\s+(\d+)\.\s", line))
    }
    assert sections == set(range(1, 11)), sections
    cited: dict[int, list[str]] = {}
    for path in code_files():
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            cited.setdefault(int(match.group(1)), []).append(str(path.relative_to(REPO)))
    assert cited, "no code cites docs/design.md §N"
    missing = {n: where for n, where in cited.items() if n not in sections}
    assert missing == {}
