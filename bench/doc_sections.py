"""The figures a bench writes into a document: one section between its begin and end markers."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS_HEAD = "# Benchmarks\n\nFigures measured by `bench/`.\n"


def write_section(
    doc: Path, section: str, begin: str, end: str, *, after: str | None = None, head: str = BENCHMARKS_HEAD
) -> None:
    """Put `section` (which starts with `begin` and ends with `end`) in `doc`: in place of the text
    between those markers if present, else after the `after` marker, else at the end. A missing
    document starts with `head`."""
    text = doc.read_text() if doc.exists() else head
    if begin in text and end in text.split(begin, 1)[1]:
        before, rest = text.split(begin, 1)
        text = before + section + rest.split(end, 1)[1]
    elif after is not None and after in text:
        text = text.replace(after, after + "\n\n" + section, 1)
    else:
        text = text.rstrip() + "\n\n" + section
    doc.write_text(text.rstrip() + "\n")
