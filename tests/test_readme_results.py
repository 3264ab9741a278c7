"""README's conclusions are quotes: every number in its *Results* section appears in a report the
same bullet links (results/<report>/), so prose cannot drift from the computed findings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mesobench.config.paths import repo_root

README = repo_root() / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def numbers_in(text: str) -> list[str]:
    """The decimal numbers written in ``text`` (``0.9434``, ``−0.0007``, ``+0.0102``), signs
    dropped: what a README quoting a report must find in it."""
    return re.findall(r"\d+\.\d+", text)


def test_numbers_in_finds_the_decimals_a_readme_quotes():
    assert numbers_in("IMN −0.0007 [−0.0116, +0.0102]; P = 0.55 on 12 tasks") == [
        "0.0007",
        "0.0116",
        "0.0102",
        "0.55",
    ]


def results_bullets() -> list[str]:
    """The bullets (with their continuation lines) of README's ``## Results`` section."""
    text = README.read_text()
    section = text.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    bullets: list[str] = []
    for line in section.splitlines():
        if line.startswith("- "):
            bullets.append(line[2:])
        elif bullets and line.startswith("  "):
            bullets[-1] += " " + line.strip()
        elif not line.strip() and bullets:
            bullets.append("")  # a paragraph ends the bullet
    return [b for b in bullets if b]


def linked_reports(bullet: str) -> list[Path]:
    """The report folders (``results/<name>/``) or report pages a bullet links."""
    reports = []
    for target in LINK.findall(bullet):
        path = target.split("#", 1)[0]
        if path.startswith("results/"):
            page = repo_root() / path
            reports.append(page.parent if page.name == "README.md" else page)
    return reports


def report_text(report: Path) -> str:
    pages = sorted(report.glob("*.md")) if report.is_dir() else [report]
    return "\n".join(p.read_text() for p in pages)


BULLETS = results_bullets()


def test_results_has_conclusions():
    assert len(BULLETS) >= 3


@pytest.mark.parametrize("bullet", BULLETS, ids=[b[:50] for b in BULLETS])
def test_every_number_in_a_results_bullet_appears_in_a_report_it_links(bullet):
    prose = LINK.sub("]", bullet)  # numbers inside link targets are addresses, not results
    numbers = numbers_in(prose)
    if not numbers:
        return
    reports = linked_reports(bullet)
    assert reports, f"a bullet with numbers links no report under results/: {bullet[:120]}"
    text = "\n".join(report_text(r) for r in reports)
    missing = [n for n in numbers if n not in text]
    assert not missing, f"not in {[str(r) for r in reports]}: {missing} — in: {bullet[:160]}"
