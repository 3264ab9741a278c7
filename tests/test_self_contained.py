"""The repository documents itself: code, configs and docs cite papers and docs/, never a file
outside the repository or an issue number, and every docs/ page (and section) they point at
exists."""

from __future__ import annotations

import re
from pathlib import Path

from mesobench.config.paths import repo_root

ROOT = repo_root()
DOCS = ROOT / "docs"
SKIPPED_DIRS = {"__pycache__", "img"}

FORBIDDEN = {
    "an outside specification": re.compile(r"\bSPEC\b|SPEC\.md"),
    "a path outside the repository": re.compile(r"\.\./shared"),
    "an issue number": re.compile(r"\bissues? *#?\d+", re.IGNORECASE),
}
DOCS_CITATION = re.compile(r"\bdocs/([\w\-/]+\.md)(?:#([\w\-]+))?")


def _text_files(*roots: Path) -> list[Path]:
    files = []
    for root in roots:
        paths = [root] if root.is_file() else sorted(root.rglob("*"))
        files += [
            p
            for p in paths
            if p.is_file()
            and not SKIPPED_DIRS & set(p.parts)
            and not any(part.endswith(".egg-info") for part in p.parts)  # pip's, not ours
        ]
    return files


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:  # a binary file (an image) cites nothing
        return []


def _citations(*roots: Path) -> list[tuple[str, str, str | None]]:
    """(where, docs page, anchor or None) of every ``docs/<page>.md[#anchor]`` in ``roots``."""
    return [
        (f"{path.relative_to(ROOT)}:{n}", match[1], match[2])
        for path in _text_files(*roots)
        for n, line in enumerate(_lines(path), 1)
        for match in DOCS_CITATION.finditer(line)
    ]


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page (fenced code blocks skipped)."""
    anchors: set[str] = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} +(.*?) *#* *$", line)):
            slug = re.sub(r"[^\w\- ]", "", heading[1].lower()).replace(" ", "-")
            anchors.add(slug if slug not in anchors else f"{slug}-1")
    return anchors


def test_no_file_cites_an_outside_specification_an_outside_path_or_an_issue_number():
    found = [
        f"{path.relative_to(ROOT)}:{n}: {what}: {line.strip()}"
        for path in _text_files(ROOT / "src", ROOT / "conf", DOCS, ROOT / "README.md")
        for n, line in enumerate(_lines(path), 1)
        for what, pattern in FORBIDDEN.items()
        if pattern.search(line)
    ]
    assert found == [], "\n".join(found)


def test_every_docs_page_that_code_or_configs_cite_exists():
    missing = [
        f"{where}: docs/{page}"
        for where, page, _ in _citations(ROOT / "src", ROOT / "conf")
        if not (DOCS / page).is_file()
    ]
    assert missing == [], "\n".join(missing)


def test_every_docs_section_that_code_or_configs_cite_exists():
    missing = [
        f"{where}: docs/{page}#{anchor}"
        for where, page, anchor in _citations(ROOT / "src", ROOT / "conf")
        if anchor and (DOCS / page).is_file() and anchor not in _anchors(DOCS / page)
    ]
    assert missing == [], "\n".join(missing)
