"""MkDocs hook (and tests/test_docs.py's helper): every section of a source file that a page
quotes exists, with both of its markers.

A chapter quotes code with a pymdownx.snippets block inside a fence: a line `--8<--`, the line
`minicnn/layers/dense.py:dense`, and `--8<--` again, which shows the lines between that file's
`[start:dense]` and `[end:dense]` markers. (The block form, because `ruff format` would rewrite
the one-line form, `--8<-- "path:section"`, as Python inside a python fence; both are read
here.) Snippets itself (check_paths) stops the build when the file or the start marker is
missing, but without an end marker it quietly quotes the rest of the file. This hook stops the
build in every case, and the test runs the same check without MkDocs.
"""

from __future__ import annotations

import re
from pathlib import Path

# Snippets' scissors: a line of its own opens or closes a block of quotes, one per line; followed
# by a quoted "path:section" on the same line, it is a quote by itself.
BLOCK = re.compile(r"^[ \t]*-+8<-+[ \t]*$")
INLINE = re.compile(r'^[ \t]*-+8<-+[ \t]+"([^"]+)"[ \t]*$')


def quoted_sections(markdown: str) -> list[tuple[str, str]]:
    """(path, section) of every snippet the page quotes; section "" when it names none."""
    targets, in_block = [], False
    for line in markdown.splitlines():
        if BLOCK.match(line):
            in_block = not in_block
        elif in_block:
            if line.strip() and not line.strip().startswith(";"):  # ";" comments a path out
                targets.append(line.strip())
        elif match := INLINE.match(line):
            targets.append(match.group(1))
    quotes = []
    for target in targets:
        path, _, section = target.rpartition(":")
        quotes.append((path, section) if path else (target, ""))
    return quotes


def problems(markdown: str, root: Path) -> list[str]:
    """What is wrong with the page's quotes, one sentence each (none: all is well)."""
    found = []
    for path, section in quoted_sections(markdown):
        source = root / path
        if not source.is_file():
            found.append(f"quotes {path}, which is missing")
            continue
        if not section:
            found.append(f"quotes all of {path}: quote a named section")
            continue
        text = source.read_text(encoding="utf-8")
        start, end = (text.find(f"--8<-- [{kind}:{section}]") for kind in ("start", "end"))
        if start < 0:
            found.append(f"quotes {path}:{section}, which has no start marker")
        elif end < start:
            found.append(f"quotes {path}:{section}, which has no end marker after its start")
    return found


def on_page_markdown(markdown, page, config, files):
    """Stop the build when a page quotes a section that is not in the source."""
    root = Path(config["docs_dir"]).resolve().parent
    found = problems(markdown, root)
    if found:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{page.file.src_uri} " + "; ".join(found))
    return markdown
