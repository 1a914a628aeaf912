"""MkDocs hook: publish the project's Python files as pages and point the chapters' source links
at them, so a link works both on GitHub (the Markdown as written) and on the built site.

A chapter links a source file GitHub-style, relative to docs/: `[conv.py](../minicnn/layers/conv.py)`.
Here every .py file of SOURCE_FOLDERS becomes a generated page `src/<path>.md` (the code with line
numbers, as of the build), and such links are rewritten to that page. A link to a file that does
not exist is left alone, so `mkdocs build --strict` reports it.

The source files carry pymdownx.snippets section markers (the chapters quote those sections).
Snippets would delete a marker line from a generated page, shifting its line numbers, so the
markers are escaped there with a `;`, which snippets removes again: the page shows the file as
it is.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, InclusionLevel

SOURCE_FOLDERS = ("minicnn", "kannada", "benchmarks", "docs")
PAGES_FOLDER = "src"
# ](../minicnn/layers/conv.py), in a chapter at docs/.
SOURCE_LINK = re.compile(r"\]\(\.\./((?:" + "|".join(SOURCE_FOLDERS) + r")/[\w/.-]+\.py)\)")
# The opening of a snippets section marker: dashes, "8<", dashes, then "[start:" or "[end:".
SECTION_MARKER = re.compile(r"(?<!;)(-+8<-+[ \t]+\[[ \t]*(?:start|end)[ \t]*:)")


def _repo_root(config) -> Path:
    return Path(config["docs_dir"]).resolve().parent


def _sources(config) -> list[str]:
    root = _repo_root(config)
    paths = []
    for folder in SOURCE_FOLDERS:
        paths += [p.relative_to(root).as_posix() for p in sorted((root / folder).rglob("*.py"))]
    return paths


def on_files(files, config):
    """Add one generated page per source file (not in the nav, so not listed in menus)."""
    root = _repo_root(config)
    for path in _sources(config):
        code = SECTION_MARKER.sub(r";\1", (root / path).read_text(encoding="utf-8"))
        content = (
            f"# `{path}`\n\nThe source file as it was when this site was built.\n\n"
            # A four-backtick fence, in case a file itself contains a three-backtick one.
            f'````python linenums="1"\n{code}\n````\n'
        )
        files.append(
            File.generated(
                config,
                f"{PAGES_FOLDER}/{path}.md",
                content=content,
                inclusion=InclusionLevel.NOT_IN_NAV,
            )
        )
    return files


def on_page_markdown(markdown, page, config, files):
    """Rewrite ](../<source>.py) links of a page at the docs root to the generated pages."""
    if "/" in page.file.src_uri:  # only the chapters (at the docs root) link like this
        return markdown
    known = set(_sources(config))

    def rewrite(match: re.Match) -> str:
        path = match.group(1)
        if path not in known:
            return match.group(0)
        return f"]({PAGES_FOLDER}/{path}.md)"

    return SOURCE_LINK.sub(rewrite, markdown)
