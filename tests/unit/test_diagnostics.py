"""Diagnostics: lines and columns counted as YAML counts them, and one line each,
whatever they quote."""

from __future__ import annotations

from service.core.diagnostics import Diagnostic, line_column, one_line


def test_line_column_counts_as_yaml_does() -> None:
    text = "\ufeffab\r\ncd\ref\ngh"
    assert line_column(text, 0) == (1, 1)
    assert line_column(text, 2) == (1, 2)  # a BOM takes no column
    assert line_column(text, text.index("d")) == (2, 2)
    assert line_column(text, text.index("f")) == (3, 2)
    assert line_column(text, text.index("h")) == (4, 2)


def test_a_diagnostic_is_one_line_whatever_it_quotes() -> None:
    odd = "a\nb\rc\td\x00e\x1ff\x85g\u2028h\u2029i\x0bj\u202ek"
    found = Diagnostic("p\n.yaml", 1, 1, "error", f"'{odd}'")
    assert found.message == "'a\\nb\\rc\\td\\x00e\\x1ff\\x85g\\u2028h\\u2029i\\x0bj\\u202ek'"
    assert str(found).splitlines() == [str(found)]
    assert one_line("Ünïcödé 👍") == "Ünïcödé 👍"
