"""Reading a CSV file of people to import (service/core/csvimport.py): the header, each
value checked by core.validate's rules, every problem at its line and column (as the
header wrote it), and the file's encodings, line endings and quoting."""

from __future__ import annotations

import pytest

from service.core import csvimport
from service.core.csvimport import Read, RowError, read

HEADER = "name,timezone,phone,email,language,wake\n"


def problems(result: Read) -> list[tuple[int, str | None]]:
    return [(e.line, e.column) for e in result.errors]


def one(text: str | bytes) -> RowError:
    result = read(text.encode() if isinstance(text, str) else text)
    assert len(result.errors) == 1, result.errors
    assert result.rows == []
    return result.errors[0]


# --- good files ------------------------------------------------------------------------


def test_a_file_is_read_into_rows_in_their_stored_form() -> None:
    result = read(
        (
            HEADER + "Rae  Example,America/New_York,+1 (415) 555-0123, rae@example.com ,EN,06:30\n"
            "Sam Lee,Europe/London,,,,\n"
        ).encode()
    )
    assert result.errors == []
    assert result.people == 2
    rae, sam = result.rows
    assert (rae.line, rae.name, rae.timezone, rae.phone, rae.email, rae.language) == (
        2,
        "Rae Example",
        "America/New_York",
        "+14155550123",
        "rae@example.com",
        "en",
    )
    assert rae.variables == {"wake": "06:30"}
    assert (sam.phone, sam.email, sam.language, sam.variables) == (None, None, None, {})


def test_bom_crlf_quoted_commas_and_blank_lines() -> None:
    data = (
        "\ufeffName,Time Zone\r\n"
        '"Lee, Sam",Europe/London\r\n'
        "\r\n"
        ",\r\n"  # a spreadsheet's empty row
        '"Quote ""Q"" Person",UTC\r\n'
    ).encode()
    result = read(data)
    assert result.errors == []
    assert [(r.line, r.name) for r in result.rows] == [
        (2, "Lee, Sam"),
        (5, 'Quote "Q" Person'),
    ]


def test_unicode_spanish_and_emoji_names() -> None:
    result = read(
        (
            "name,timezone,language\n"
            "José Ñúñez Peña,America/Mexico_City,es-mx\n"
            "Zoë 🌱 Ämmälä,Europe/Helsinki,fi\n"
            "李小龍,Asia/Shanghai,zh-Hant-TW\n"
        ).encode()
    )
    assert result.errors == []
    assert [(r.name, r.language) for r in result.rows] == [
        ("José Ñúñez Peña", "es-MX"),
        ("Zoë 🌱 Ämmälä", "fi"),
        ("李小龍", "zh-Hant-TW"),
    ]


def test_a_quoted_value_over_lines_counts_its_lines() -> None:
    result = read(b'name,timezone\n"Two\nLines",UTC\nNext,Mars/Base\n')
    assert problems(result) == [(4, "timezone")]


def test_lone_carriage_returns_end_lines() -> None:
    result = read(b"name,timezone\rA,UTC\rB,Nowhere\r")
    assert problems(result) == [(3, "timezone")]


def test_formula_like_names_are_just_text() -> None:
    result = read(b"name,timezone\n\"=cmd|' /C calc'!A0\",UTC\n+SUM(A1),UTC\n")
    assert [r.name for r in result.rows] == ["=cmd|' /C calc'!A0", "+SUM(A1)"]


# --- the header ------------------------------------------------------------------------


def test_header_case_spaces_underscores_are_ignored_for_known_columns() -> None:
    result = read(b" NAME ,Time_Zone,E-Mail,Phone Number\nA,UTC,a@b.co,\n")
    # "Phone Number" is not "phone": it is taken for a variable, and its name is refused.
    assert problems(result) == [(1, "Phone Number")]
    assert "such as phone_number" in result.errors[0].message


@pytest.mark.parametrize(
    ("header", "column", "words"),
    [
        ("name,phone\n", "timezone", "no 'timezone' column"),
        ("timezone\n", "name", "no 'name' column"),
        ("name,tz\n", "tz", "call the column 'tz' timezone"),
        ("name,timezone,Name\n", "Name", "twice (also as 'name')"),
        ("name,timezone,wake,wake\n", "wake", "twice"),
        ("name,timezone,2wake\n", "2wake", "variable's name"),
        ("name,timezone,wake-up\n", "wake-up", "such as wake_up"),
    ],
)
def test_header_problems_name_their_column(header: str, column: str, words: str) -> None:
    error = one(header + "A,UTC,x,y\n")
    assert (error.line, error.column) == (1, column)
    assert words in error.message


def test_too_many_variable_columns() -> None:
    header = "name,timezone," + ",".join(f"v{i}" for i in range(51))
    error = one(header + "\n")
    assert (error.line, error.column) == (1, None)
    assert "at most 50" in error.message


def test_an_empty_file_and_a_file_with_nobody() -> None:
    assert one(b"").message.startswith("the file is empty")
    assert one(b"\n\n").message.startswith("the file is empty")
    error = one(b"name,timezone\n\n")
    assert (error.line, error.message) == (2, "the file has a header but nobody under it")


# --- rows ------------------------------------------------------------------------------


def test_every_bad_value_of_every_row_is_reported_at_its_line_and_column() -> None:
    data = (
        b"Name,TimeZone,Phone,Email,Language,Wake\n"
        b"Good One,UTC,+14155550100,good@example.com,en,07:00\n"
        b",Europe/Londn,+1 555,no-at-sign,es_MX,25:00\n"
        b"Also Good,UTC,,,,\n"
        b"Bad Zone,,+14155550101,,,bedtime + x\n"
    )
    result = read(data)
    assert result.rows == []
    assert result.people == 4
    assert problems(result) == [
        (3, "Name"),
        (3, "TimeZone"),
        (3, "Phone"),
        (3, "Email"),
        (3, "Language"),
        (3, "Wake"),
        (5, "TimeZone"),
        (5, "Wake"),
    ]
    messages = [e.message for e in result.errors]
    assert messages[0] == "a name cannot be empty"
    assert "did you mean 'Europe/London'" in messages[1]
    assert "E.164" in messages[2]
    assert "not an email address" in messages[3]
    assert "es-MX, with a hyphen" in messages[4]
    assert "not a time of day" in messages[5]
    assert not messages[5].startswith("variable")
    assert messages[6].startswith("a time zone is required")
    assert result.errors[0].text("people.csv") == (
        "people.csv:3: error: column Name: a name cannot be empty"
    )


def test_control_characters_and_long_names_are_refused() -> None:
    error = one("name,timezone\nBell\x07Name,UTC\n")
    assert (error.line, error.column) == (2, "name")
    assert "control characters" in error.message
    error = one(f"name,timezone\n{'x' * 201},UTC\n")
    assert "at most 200 characters" in error.message


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ("A,UTC,extra\n", "#3", "3 values but the header has 2 columns; a value with a comma"),
        ("A\n", "timezone", "1 value but the header has 2 columns"),
        ('"A,UTC\nB,UTC\n', "timezone", "runs over several lines"),
    ],
)
def test_ragged_rows(row: str, column: str, words: str) -> None:
    error = one("name,timezone\n" + row)
    assert (error.line, error.column) == (2, column)
    assert words in error.message


def test_a_value_under_a_column_with_no_name() -> None:
    assert read(b"name,timezone,\nA,UTC,\n").errors == []
    error = one(b"name,timezone,\nA,UTC,surprise\n")
    assert (error.line, error.column) == (2, "#3")


def test_the_same_phone_twice_names_both_lines() -> None:
    result = read(
        b"name,timezone,Mobile Phone\nA,UTC,+14155550100\nB,UTC,+14155550101\n"
        b"C,UTC,+1 415 555 0100\n"
    )
    # "Mobile Phone" is a variable column, not the phone: no duplicate is found ...
    assert problems(result) == [(1, "Mobile Phone")]
    result = read(
        b"name,timezone,phone\nA,UTC,+14155550100\nB,UTC,+14155550101\nC,UTC,+1 415 555 0100\n"
    )
    assert [(e.line, e.column, e.message) for e in result.errors] == [
        (2, "phone", "+14155550100 is also on line 4; each person needs their own number"),
        (4, "phone", "+14155550100 is also on line 2; each person needs their own number"),
    ]


# --- the file as a whole ---------------------------------------------------------------


def test_other_encodings_are_refused_at_line_1() -> None:
    error = one("name,timezone\nJosé,UTC\n".encode("latin-1"))
    assert (error.line, error.column) == (1, None)
    assert "not UTF-8" in error.message
    assert "line 2" in error.message
    assert "UTF-16" in one("name,timezone\n".encode("utf-16")).message


def test_nul_bytes_are_refused() -> None:
    error = one(b"name,timezone\nA\x00B,UTC\n")
    assert (error.line, error.column) == (1, None)
    assert "NUL" in error.message
    assert "line 2" in error.message


def test_the_size_and_row_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    big = b"name,timezone\n" + b"x" * csvimport.MAX_BYTES
    assert "larger than 5 MiB" in one(big).message
    monkeypatch.setattr(csvimport, "MAX_ROWS", 3)
    error = one(b"name,timezone\n" + b"A,UTC\n" * 3 + b"\n" + b"B,UTC\n")
    assert (error.line, error.column) == (6, None)
    assert "more than 3 people" in error.message


def test_a_huge_value_is_refused() -> None:
    error = one(b"name,timezone\n" + b"x" * (csvimport.MAX_FIELD + 1) + b",UTC\n")
    assert (error.line, error.column) == (2, "name")
    assert "longer than" in error.message


@pytest.mark.parametrize(
    ("tag", "stored"),
    [("en", "en"), ("ES", "es"), ("es-mx", "es-MX"), ("es-419", "es-419"), ("zh-hant", "zh-Hant")],
)
def test_language_tags(tag: str, stored: str) -> None:
    assert csvimport.language(tag) == stored


@pytest.mark.parametrize("tag", ["english", "e", "es_MX", "es-MEX1", "12", "es-"])
def test_bad_language_tags(tag: str) -> None:
    with pytest.raises(csvimport.validate.Invalid):
        csvimport.language(tag)


def test_an_error_prints_on_one_line() -> None:
    error = RowError(2, "na\nme", "bad\nthing")
    assert error.text("a\nb.csv") == "a\\nb.csv:2: error: column na\\nme: bad\\nthing"
    assert RowError(1, None, "whole file").text("f.csv") == "f.csv:1: error: whole file"
