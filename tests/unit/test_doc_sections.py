"""`bench.doc_sections.write_section`: a section replaces its own markers' text only, a new one goes
after the named marker or at the end, and a missing document gets its head."""

from __future__ import annotations

from pathlib import Path

from bench.doc_sections import write_section


def block(name: str, body: str) -> tuple[str, str, str]:
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    return f"{begin}\n{body}\n{end}", begin, end


def test_sections_are_replaced_in_place_and_added_where_asked(tmp_path: Path) -> None:
    doc = tmp_path / "figures.md"
    write_section(doc, *block("a", "A1"), head="# Figures\n")
    write_section(doc, *block("b", "B1"))
    write_section(doc, *block("a", "A2"))
    a_end = block("a", "")[2]
    write_section(doc, *block("c", "C"), after=a_end)
    assert doc.read_text() == (
        "# Figures\n\n"
        "<!-- a: begin -->\nA2\n<!-- a: end -->\n\n"
        "<!-- c: begin -->\nC\n<!-- c: end -->\n\n"
        "<!-- b: begin -->\nB1\n<!-- b: end -->\n"
    )


def test_text_around_a_section_is_kept(tmp_path: Path) -> None:
    doc = tmp_path / "figures.md"
    doc.write_text("# T\n\nbefore\n\n<!-- a: begin -->\nold\n<!-- a: end -->\n\nafter: <!-- a: end -->\n")
    write_section(doc, *block("a", "new"))
    assert (
        doc.read_text()
        == "# T\n\nbefore\n\n<!-- a: begin -->\nnew\n<!-- a: end -->\n\nafter: <!-- a: end -->\n"
    )
