"""The course in docs/ runs: every chapter's Python blocks execute in order, sharing state, and
every figure and source file a chapter points to is produced by the figure script or exists.
The code a chapter quotes from the source files (pymdownx.snippets sections) exists too.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
CHAPTERS = sorted(DOCS.glob("[0-9][0-9]-*.md"))
PAGES = [DOCS / "index.md", *CHAPTERS]
FIGURE_LINK = re.compile(r"!\[[^\]]*\]\((figures/[^)\s]+)\)")
SOURCE_LINK = re.compile(r"\]\(\.\./([^)\s]+)\)")


def test_the_course_has_its_chapters():
    assert len(CHAPTERS) == 10, [p.name for p in CHAPTERS]
    nav = (REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in PAGES:
        assert f": {page.name}" in nav, f"mkdocs.yml nav does not list {page.name}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_chapter_code_runs(chapter, tmp_path, monkeypatch):
    """All ```python blocks of the chapter, concatenated and run as one program (mktestdocs)."""
    mktestdocs = pytest.importorskip("mktestdocs")
    monkeypatch.chdir(tmp_path)  # files the chapter writes (runs/, figures) go here
    monkeypatch.syspath_prepend(str(DOCS))  # the chapters import docs/course.py
    monkeypatch.setenv("MPLBACKEND", "Agg")
    mktestdocs.check_md_file(chapter, memory=True)


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.stem)
def test_links_point_at_real_files(page):
    """Source links (../minicnn/x.py) name existing files; every chapter links its source."""
    text = page.read_text(encoding="utf-8")
    targets = SOURCE_LINK.findall(text)
    if page in CHAPTERS:
        assert any(t.endswith(".py") for t in targets), f"{page.name} links no source file"
    for target in targets:
        assert (REPO_ROOT / target).is_file(), f"{page.name} links ../{target}, which is missing"


def load_docs_module(name: str, relative: str):
    """A script of docs/ as a module (the figure script and the hooks are not in a package)."""
    spec = importlib.util.spec_from_file_location(name, DOCS / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_chapters_quote_the_source():
    quotes = load_docs_module("quoted_sections", "_hooks/quoted_sections.py")
    assert any(quotes.quoted_sections(page.read_text(encoding="utf-8")) for page in CHAPTERS)


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.stem)
def test_quoted_sections_exist(page):
    """Each `--8<-- "path:section"` names a file that has both markers of that section, start
    before end (the mkdocs hook docs/_hooks/quoted_sections.py stops the build likewise)."""
    quotes = load_docs_module("quoted_sections", "_hooks/quoted_sections.py")
    assert quotes.problems(page.read_text(encoding="utf-8"), REPO_ROOT) == [], page.name


def load_figure_script():
    """docs/figures/make_figures.py as a module (it is a script, not part of a package)."""
    return load_docs_module("make_figures", "figures/make_figures.py")


def test_every_figure_comes_from_the_script():
    """Each figures/... image a page shows is one that make_figures.py writes."""
    produced = load_figure_script().figure_paths()
    for page in PAGES:
        for target in FIGURE_LINK.findall(page.read_text(encoding="utf-8")):
            assert target in produced, (
                f"{page.name} shows {target}, which make_figures.py does not make"
            )


def test_dataset_figures_stay_out_of_git():
    """Figures made from Kannada-MNIST are written under docs/figures/data/, which git ignores."""
    script = load_figure_script()
    ignored = (DOCS / "figures" / ".gitignore").read_text(encoding="utf-8").split()
    assert "data/" in ignored
    for name, (_, outputs, needs_data) in script.FIGURES.items():
        for output in outputs:
            assert output.startswith("data/") == needs_data, (name, output)
