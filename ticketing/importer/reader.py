"""Read a CSV log into checked rows.

Columns are found by position, because an export may repeat a header name (the helpdesk
log has `Variant` twice, and a dict-based reader would keep only one of them). Every
row is checked against the mapping before anything is stored. A malformed row becomes
an InvalidRow with its line number and reason, and the caller decides whether that
stops the import.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ticketing.importer.errors import ColumnError, SourceError
from ticketing.importer.mapping import ColumnRef, Mapping
from ticketing.importer.timestamps import parse_timestamp

# Line breaks as the csv module counts them for line numbers: \r\n, \r or \n.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SourceRow:
    """One well-formed row of the log, with its values picked out by the mapping."""

    line: int
    case: str
    label: str
    occurred_at: datetime
    resource: str
    customer: str
    department: str
    attributes: dict[str, str]
    priority_value: str | None
    local_time_issue: str | None
    # The mapped values in a fixed order. Idempotency keys and duplicate detection use
    # it, so unmapped columns (such as an export's variant numbers) change neither.
    content: str = field(repr=False)
    # The row as read, for the rejects file.
    fields: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class InvalidRow:
    line: int
    reason: str
    fields: tuple[str, ...]


@dataclass
class LogContents:
    path: str
    header: list[str]
    rows: list[SourceRow]
    invalid: list[InvalidRow]
    rows_read: int = 0
    blank_lines: int = 0
    rows_beyond_limit: int = 0


def read_log(path: Path | str, mapping: Mapping, *, limit_cases: int | None = None) -> LogContents:
    """Read and check every row of the log at `path`.

    With `limit_cases`, only rows of the first `limit_cases` case ids (in order of first
    appearance) are parsed. The other rows are counted in `rows_beyond_limit`.

    NOTE: every parsed row stays in memory, because cases are grouped and people are
    planned before the first ticket is stored. A row of the helpdesk log takes about
    3 KB with its plan (tracemalloc), so a log of millions of rows needs gigabytes.
    """
    source = Path(path)
    records = _records(source, mapping)
    try:
        _, header = next(records)
    except StopIteration:
        raise SourceError(f"{source}: the file is empty. A log needs a header row.") from None

    indices = resolve_columns(header, mapping, source)
    parser = _RowParser(mapping, indices, header)
    contents = LogContents(path=str(source), header=header, rows=[], invalid=[])
    selected_cases: set[str] = set()

    for line, record in records:
        if not record:
            contents.blank_lines += 1
            continue
        contents.rows_read += 1

        if limit_cases is not None and not _within_limit(record, indices["columns.case"], selected_cases, limit_cases):
            contents.rows_beyond_limit += 1
            continue

        parsed = parser.parse(line, record)
        if isinstance(parsed, InvalidRow):
            contents.invalid.append(parsed)
        else:
            contents.rows.append(parsed)

    return contents


def resolve_columns(header: list[str], mapping: Mapping, path: Path | str) -> dict[str, int]:
    """Return the 0-based index of every mapped column; raise ColumnError listing every problem."""
    names = [name.strip() for name in header]
    indices: dict[str, int] = {}
    problems: list[str] = []
    for key, column in mapping.columns().items():
        index = _column_index(names, column)
        if isinstance(index, str):
            problems.append(f"{column.describe()} for mapping key {key}: {index}")
        else:
            indices[key] = index

    if problems:
        listing = ", ".join(repr(name) for name in names)
        raise ColumnError(
            path,
            f"the header does not match the mapping {mapping.path}: {'; '.join(problems)}. "
            f"The header has: {listing}. Fix the column names in the mapping, or pass "
            f"--mapping with a mapping written for this log.",
        )
    return indices


def _column_index(names: list[str], column: ColumnRef) -> int | str:
    """Return the column's index, or why it cannot be found."""
    if column.position is not None:
        if column.position > len(names):
            return f"the header has only {len(names)} columns"
        return column.position - 1

    positions = [index for index, name in enumerate(names) if name == column.name]
    if not positions:
        return "missing"
    if column.occurrence is None:
        if len(positions) > 1:
            places = ", ".join(str(index + 1) for index in positions)
            return (
                f"the name appears {len(positions)} times (positions {places}), so write "
                f"{{name: {column.name}, occurrence: 1}} to choose one"
            )
        return positions[0]
    if column.occurrence > len(positions):
        return f"the name appears only {len(positions)} time(s)"
    return positions[column.occurrence - 1]


def _records(path: Path, mapping: Mapping) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line number, fields) for each CSV record, header included."""
    try:
        handle = path.open(encoding=mapping.encoding, newline="")
    except OSError as error:
        raise SourceError(f"{path}: cannot open the log ({error.strerror}). Check the FILE argument.") from error
    except LookupError as error:
        raise SourceError(f"{path}: unknown encoding {mapping.encoding!r} in csv.encoding of {mapping.path}.") from error

    with handle:
        reader = csv.reader(handle, delimiter=mapping.delimiter)
        last_line = 0
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as error:
                raise _decode_error(path, mapping) from error
            except csv.Error as error:
                raise SourceError(
                    f"{path} line {last_line + 1}: the CSV is malformed ({error}). Check the quoting near that line."
                ) from error
            # A quoted field may span lines, so a record starts after the previous one ended.
            yield last_line + 1, record
            last_line = reader.line_num


def _decode_error(path: Path, mapping: Mapping) -> SourceError:
    """Return the error for a log that is not valid in the mapping's encoding, with the line of the first bad byte.

    The csv reader decodes the file in chunks of several kilobytes, so its line count
    at the error lags behind the byte that failed. The file is decoded again in one
    piece here to find that byte's offset, and the line breaks before it are counted.
    """
    raw = path.read_bytes()
    try:
        raw.decode(mapping.encoding)
    except UnicodeDecodeError as error:
        before = raw[: error.start].decode(mapping.encoding, errors="replace")
        line = len(_LINE_BREAK.findall(before)) + 1
        bad = " ".join(f"0x{byte:02X}" for byte in raw[error.start : error.end])
        return SourceError(
            f"{path} line {line}: the file is not valid {mapping.encoding} (byte {bad}: {error.reason}). "
            f"Re-encode the file as UTF-8, for example with iconv -f latin1 -t utf-8 if it is Latin-1, or set "
            f"csv.encoding in {mapping.path} to the file's encoding."
        )
    # The decoder in the csv loop failed, but the whole file decodes. This happens only
    # with an encoding whose incremental decoder differs from its one-shot decoder.
    return SourceError(
        f"{path}: the file is not valid {mapping.encoding}. Re-encode it as UTF-8, or set csv.encoding in "
        f"{mapping.path} to the file's encoding."
    )


def _within_limit(record: list[str], case_index: int, selected: set[str], limit: int) -> bool:
    case = record[case_index].strip() if case_index < len(record) else ""
    if case in selected:
        return True
    if len(selected) >= limit:
        return False
    selected.add(case)
    return True


class _RowParser:
    def __init__(self, mapping: Mapping, indices: dict[str, int], header: list[str]) -> None:
        self.mapping = mapping
        self.indices = indices
        self.width = len(header)
        self.header = [name.strip() for name in header]
        self.label_key = f"columns.{mapping.label_name}"
        self.attribute_keys = {name: f"attributes.{name}" for name in mapping.attributes}

    def parse(self, line: int, record: list[str]) -> SourceRow | InvalidRow:
        fields = tuple(record)
        if len(record) != self.width:
            kind = "short" if len(record) < self.width else "long"
            return InvalidRow(line, f"{kind} row: {len(record)} fields, but the header has {self.width}", fields)

        try:
            return self._parse_fields(line, record)
        except _RowProblem as problem:
            return InvalidRow(line, str(problem), fields)

    def _parse_fields(self, line: int, record: list[str]) -> SourceRow:
        mapping = self.mapping
        case = self._required(record, "columns.case")
        label = self._required(record, self.label_key)
        if label not in mapping.commands:
            raise _RowProblem(
                f"unknown {mapping.label_name} {label!r} in {self._column(self.label_key)}. "
                f"Add it to {mapping.label_name}_commands in {mapping.path}"
            )

        raw_time = self._required(record, "columns.timestamp")
        try:
            parsed_time = parse_timestamp(raw_time, mapping.timestamp_format, mapping.timezone)
        except ValueError:
            raise _RowProblem(
                f"invalid timestamp {raw_time!r} in {self._column('columns.timestamp')}, "
                f"expected the format {mapping.timestamp_format}"
            ) from None

        resource = self._value(record, "columns.resource")
        customer = self._required(record, "columns.customer")
        department = self._required(record, "columns.department") if mapping.department_column else ""
        attributes = {name: self._value(record, key) for name, key in self.attribute_keys.items()}
        priority_value = self._priority_value(record)

        content = json.dumps(
            [case, label, raw_time, resource, customer, department, sorted(attributes.items()), priority_value],
            ensure_ascii=False,
        )
        return SourceRow(
            line=line,
            case=case,
            label=label,
            occurred_at=parsed_time.utc,
            resource=resource,
            customer=customer,
            department=department or (mapping.department or ""),
            attributes=attributes,
            priority_value=priority_value,
            local_time_issue=parsed_time.issue,
            content=content,
            fields=tuple(record),
        )

    def _priority_value(self, record: list[str]) -> str | None:
        rule = self.mapping.priority_rule
        if rule is None:
            return None
        value = self._value(record, "priority.column")
        if value not in rule.values:
            known = ", ".join(repr(name) for name in rule.values)
            raise _RowProblem(
                f"unknown priority value {value!r} in {self._column('priority.column')}. "
                f"Add it to priority.values in {self.mapping.path} (known: {known})"
            )
        return value

    def _value(self, record: list[str], key: str) -> str:
        index = self.indices.get(key)
        return "" if index is None else record[index].strip()

    def _required(self, record: list[str], key: str) -> str:
        value = self._value(record, key)
        if not value:
            raise _RowProblem(f"missing value in {self._column(key)}")
        return value

    def _column(self, key: str) -> str:
        index = self.indices[key]
        return f"column {index + 1} ({self.header[index]!r})"


class _RowProblem(Exception):
    """Problem found in one row. The parser turns it into an InvalidRow."""
