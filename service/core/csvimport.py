"""Reading a CSV file of people to import (`tend participants import`, the API's
`POST /api/participants/import`, the dashboard's import page).

The file has a header row: `name` and `timezone` are required; `phone`, `email` and
`language` are optional; any other column is a variable (`wake`, `bedtime`), its name a
variable name as the plan language's. Case and spaces in the header are ignored
(`Time Zone` is `timezone`). Each value is checked by the rules of `core.validate`, so
an imported person is held to what `tend participants add` holds them to.

Every problem of every row is reported, each at its line (the header is line 1; a
quoted value over several lines counts them all) and column (as the header wrote it),
so that one run shows everything to fix. Nothing is imported unless there are none:
`read` returns rows or errors, never both.

Pure: no I/O and no clock; the file's contents are a parameter.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from service.core import language as languages
from service.core import validate
from service.core.diagnostics import one_line

MAX_ROWS = 10_000  # people in one file
MAX_BYTES = 5 * 1024 * 1024  # the file's size
MAX_FIELD = 64 * 1024  # characters of one value (the csv module's limit is 128 Ki)
MAX_LANGUAGE = languages.MAX_TAG  # characters of a language tag, as stored

REQUIRED = ("name", "timezone")
KNOWN = ("name", "timezone", "phone", "email", "language")

_VARIABLE = re.compile(validate.VARIABLE_NAME)
# Other names people give the required columns: said in the error, not taken.
_ALIASES = {"tz": "timezone", "zone": "timezone", "fullname": "name"}


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem: its line (1 is the header), the column as the header wrote it
    (None: the row or the file as a whole) and what to do about it."""

    line: int
    column: str | None
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", one_line(self.message))
        if self.column is not None:
            object.__setattr__(self, "column", one_line(self.column))

    def text(self, filename: str) -> str:
        """`FILE:LINE: error: column COLUMN: MESSAGE` (without `column` for the row as a
        whole)."""
        where = f"column {self.column}: " if self.column is not None else ""
        return f"{one_line(filename)}:{self.line}: error: {where}{self.message}"


@dataclass(frozen=True, slots=True)
class Row:
    """One person as the file gives them, each value checked and in its stored form."""

    line: int
    name: str
    timezone: str
    phone: str | None = None
    email: str | None = None
    language: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)  # key -> the column as written


@dataclass(frozen=True, slots=True)
class Read:
    """What `read` found: the rows, or the errors (then no rows)."""

    rows: list[Row]
    errors: list[RowError]
    people: int = 0  # the rows of people the file has (empty ones aside), good or bad

    @property
    def ok(self) -> bool:
        return not self.errors


def language(text: str) -> str:
    """A simple BCP 47 language tag (en, es, es-MX, zh-Hant-TW), in its usual case
    (`core.language.tag`)."""
    try:
        return languages.tag(text)
    except languages.NotATag as exc:
        raise validate.Invalid(str(exc)) from None


def read(data: bytes) -> Read:
    """The people in a CSV file (UTF-8, with or without a byte order mark), or every
    problem found in it."""
    if len(data) > MAX_BYTES:
        mib = MAX_BYTES // (1024 * 1024)
        return _refused(
            RowError(1, None, f"the file is larger than {mib} MiB; split it into smaller files")
        )
    decoded = _decode(data)
    if isinstance(decoded, RowError):
        return _refused(decoded)
    records = _records(decoded)
    first = next(records, None)
    if first is None:
        return _refused(RowError(1, None, _EMPTY_FILE))
    columns, errors = _header(*first)
    if errors:
        return _refused(*errors)
    rows: list[Row] = []
    count = 0
    for line, cells, unreadable in records:
        if unreadable is not None:
            errors.append(RowError(line, None, f"this row cannot be read: {unreadable}"))
            break
        if not any(cell.strip() for cell in cells):
            continue  # an empty line, or a row of empty cells (a spreadsheet's last rows)
        count += 1
        if count > MAX_ROWS:
            message = f"the file has more than {MAX_ROWS:,} people; split it into several files"
            errors.append(RowError(line, None, message))
            break
        row, problems = _row(line, cells, columns)
        errors.extend(problems)
        if row is not None:
            rows.append(row)
    if count == 0 and not errors:
        errors.append(RowError(2, None, "the file has a header but nobody under it"))
    errors.extend(_same_phones(rows))
    if errors:
        return Read([], sorted(errors, key=lambda e: e.line), count)
    return Read(rows, [], count)


# --- internals ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Column:
    index: int
    written: str  # as the header wrote it
    key: str  # name, timezone, phone, email, language, or a variable's name


def _refused(*errors: RowError) -> Read:
    return Read([], list(errors))


_EMPTY_FILE = "the file is empty; it needs a header row, such as name,timezone,phone,email"


def _decode(data: bytes) -> str | RowError:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return RowError(1, None, "the file is UTF-16, not UTF-8; save it as 'CSV UTF-8'")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return RowError(
            1,
            None,
            f"the file is not UTF-8 text (byte 0x{data[exc.start]:02X} on line {line} is not "
            "UTF-8); save it as 'CSV UTF-8' (in a spreadsheet: Save as, CSV UTF-8)",
        )
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        return RowError(
            1, None, f"the file has a NUL character (line {line}): it is not a CSV text file"
        )
    return text


def _records(text: str) -> Iterator[tuple[int, list[str], str | None]]:
    """Each record of the file, the line it starts on, and None; or, when the csv module
    cannot go on (a value over its size limit), that line, no cells and why, last."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    ended = 0  # the last line of the previous record
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield ended + 1, [], str(exc)
            return
        yield ended + 1, cells, None
        ended = reader.line_num


def _header(
    line: int, cells: Sequence[str], unreadable: str | None
) -> tuple[list[_Column | None], list[RowError]]:
    """The columns (None for one with no name), or the header's problems."""
    if unreadable is not None:
        return [], [RowError(line, None, f"the header cannot be read: {unreadable}")]
    if not any(cell.strip() for cell in cells):
        return [], [RowError(line, None, _EMPTY_FILE)]
    columns: list[_Column | None] = []
    errors: list[RowError] = []
    seen: dict[str, str] = {}
    variables = 0
    for index, cell in enumerate(cells):
        written = cell.strip()
        if not written:
            columns.append(None)  # the values under it must be empty (checked per row)
            continue
        squeezed = _squeezed(written)
        key = squeezed if squeezed in KNOWN else written.lower()
        if key in seen:
            also = f" (also as '{seen[key]}')" if seen[key] != written else ""
            errors.append(
                RowError(line, written, f"the header has this column twice{also}; keep one")
            )
            columns.append(None)
            continue
        seen[key] = written
        if key not in KNOWN:
            variables += 1
            if not _VARIABLE.match(key) and squeezed not in _ALIASES:
                errors.append(RowError(line, written, _not_a_variable(key)))
        columns.append(_Column(index, written, key))
    for required in REQUIRED:
        if required not in seen:
            alias = next(
                (c for c in columns if c and _ALIASES.get(_squeezed(c.written)) == required), None
            )
            hint = f" (call the column '{alias.written}' {required})" if alias else ""
            message = f"the header has no '{required}' column; it is required{hint}"
            errors.append(RowError(line, alias.written if alias else required, message))
    if variables > validate.MAX_VARIABLES:
        errors.append(
            RowError(
                line,
                None,
                f"the header has {variables} variable columns; at most {validate.MAX_VARIABLES}",
            )
        )
    return columns, errors


def _squeezed(written: str) -> str:
    """A header's name without case, spaces, _ and -, as known columns are matched."""
    return re.sub(r"[\s_-]+", "", written).lower()


def _not_a_variable(key: str) -> str:
    suggestion = re.sub(r"[^a-z0-9_]+", "_", key).strip("_")
    hint = f" (such as {suggestion})" if suggestion and _VARIABLE.match(suggestion) else ""
    return (
        "not a column Tend knows (name, timezone, phone, email, language), nor a variable "
        f"name: a variable's name is lower case letters, digits and _{hint}"
    )


def _row(
    line: int, cells: list[str], columns: Sequence[_Column | None]
) -> tuple[Row | None, list[RowError]]:
    if len(cells) != len(columns):
        return None, [_ragged(line, cells, columns)]
    errors: list[RowError] = []
    values: dict[str, str | None] = {}
    variables: dict[str, str] = {}
    written: dict[str, str] = {}
    for index, (column, cell) in enumerate(zip(columns, cells, strict=True)):
        if column is None:
            if cell.strip():
                errors.append(
                    RowError(
                        line,
                        f"#{index + 1}",
                        "this value is under a column with no name; name the column or clear it",
                    )
                )
            continue
        if len(cell) > MAX_FIELD:
            errors.append(
                RowError(line, column.written, f"the value is longer than {MAX_FIELD:,} characters")
            )
            continue
        try:
            checked = _checked(column.key, cell)
        except validate.Invalid as exc:
            errors.append(RowError(line, column.written, _without_prefix(str(exc), column.key)))
            continue
        written[column.key] = column.written
        if column.key in KNOWN:
            values[column.key] = checked
        elif checked is not None:
            variables[column.key] = checked
    if errors:
        return None, errors
    row = Row(
        line=line,
        name=values["name"] or "",
        timezone=values["timezone"] or "",
        phone=values.get("phone"),
        email=values.get("email"),
        language=values.get("language"),
        variables=variables,
        columns=written,
    )
    return row, []


def _checked(key: str, cell: str) -> str | None:
    """The value in its stored form; None for an empty optional one."""
    text = cell.strip()
    if key == "name":
        return validate.name(cell)
    if key == "timezone":
        if not text:
            raise validate.Invalid("a time zone is required, such as America/New_York")
        return validate.zone(text)
    if not text:
        return None
    if key == "phone":
        return validate.phone(text)
    if key == "email":
        return validate.email(text)
    if key == "language":
        return language(text)
    return validate.variables({key: cell})[key]


def _without_prefix(message: str, key: str) -> str:
    """validate's message for a variable without its `variable 'x': ` (the column says it)."""
    return message.removeprefix(f"variable '{key}': ")


def _ragged(line: int, cells: list[str], columns: Sequence[_Column | None]) -> RowError:
    have, want = len(cells), len(columns)
    opened = next((c for c in cells if "\n" in c or "\r" in c), None)
    if opened is not None:
        hint = (
            "; a double quote in it opens a value that runs over several lines: close it, "
            'or write a quote inside a value as two ("")'
        )
    elif have > want:
        hint = "; a value with a comma in it must be in double quotes"
    else:
        hint = ""
    if have < want:
        missing = next((c for c in columns[have:] if c is not None), None)
        column = missing.written if missing is not None else None
        return RowError(
            line, column, f"the row has {_values(have)} but the header has {want} columns{hint}"
        )
    return RowError(
        line, f"#{want + 1}", f"the row has {_values(have)} but the header has {want} columns{hint}"
    )


def _values(count: int) -> str:
    return f"{count} value{'s' if count != 1 else ''}"


def _same_phones(rows: Sequence[Row]) -> list[RowError]:
    """Each row whose phone number another row of the file has too, naming the others."""
    lines: dict[str, list[Row]] = {}
    for row in rows:
        if row.phone is not None:
            lines.setdefault(row.phone, []).append(row)
    errors: list[RowError] = []
    for phone, same in lines.items():
        if len(same) < 2:
            continue
        for row in same:
            others = ", ".join(str(o.line) for o in same if o is not row)
            errors.append(
                RowError(
                    row.line,
                    row.columns.get("phone", "phone"),
                    f"{phone} is also on line{'s' if len(same) > 2 else ''} "
                    f"{others}; each person needs their own number",
                )
            )
    return errors


def _shown(value: str) -> str:
    cut = value if len(value) <= 40 else value[:40] + "..."
    return f"'{one_line(cut)}'"
