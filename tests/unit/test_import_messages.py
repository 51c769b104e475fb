"""Messages of the importer that stop an import: undecodable log, rows out of order, unusable rejects path."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from ticketing.importer.errors import RejectsFileError, SourceError, TicketImportError
from ticketing.importer.executor import TicketRejected
from ticketing.importer.rejects import RejectsWriter, check_rejects_path
from tests.unit.test_import_rows import HEADER, MAPPING, drive_one, read, row, write_log


def write_rows_with_latin1_byte(path: Path, rows: int, bad_line: int) -> None:
    """Write a UTF-8 log of `rows` rows whose physical line `bad_line` contains one Latin-1 byte."""
    lines = [",".join(HEADER)]
    for number in range(1, rows + 1):
        lines.append(",".join(row(f"Case {number}", "Assign seriousness", "Value 1", "2012/1/1 10:00:00")))
    encoded = [line.encode("utf-8") for line in lines]
    encoded[bad_line - 1] = encoded[bad_line - 1].replace(b"Value 1", "Caff\xe8 1".encode("latin-1"), 1)
    path.write_bytes(b"\r\n".join(encoded) + b"\r\n")


def test_undecodable_byte_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    write_rows_with_latin1_byte(path, rows=150, bad_line=100)

    with pytest.raises(SourceError) as caught:
        read(path)

    message = str(caught.value)
    assert message.startswith(f"{path} line 100: ")
    assert "0xE8" in message
    assert "Re-encode the file as UTF-8" in message
    assert f"csv.encoding in {MAPPING.path}" in message


def test_undecodable_byte_after_multiline_field(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        quoted = row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00")
        quoted[9] = "first line\nsecond line"
        writer.writerow(quoted)
    with path.open("ab") as handle:
        handle.write(",".join(row("Case 2", "Assign seriousness", "Caff\xe8", "2012/1/1 10:00:00")).encode("latin-1"))

    with pytest.raises(SourceError) as caught:
        read(path)

    assert str(caught.value).startswith(f"{path} line 4: ")


def test_out_of_order_message_says_what_to_do(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/2 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 1", "2012/1/1 10:00:00"),
        ],
    )

    with pytest.raises(TicketRejected) as caught:
        drive_one(path)

    reason = caught.value.reason
    assert "Rows of a case must be in time order, so correct the time" in reason
    assert reason.endswith(".")


def test_rejected_ticket_message_gives_next_step() -> None:
    error = TicketImportError("log.csv", "Case 1", 3, "time order is broken.")

    message = str(error)
    assert message.startswith("log.csv line 3: case 'Case 1' was not imported: time order is broken. ")
    assert "--skip-invalid" in message
    assert ".." not in message


def test_rejects_path_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(RejectsFileError) as caught:
        check_rejects_path(tmp_path)

    assert f"the rejects file {tmp_path} is a folder" in str(caught.value)
    assert str(tmp_path / "rejects.csv") in str(caught.value)


def test_rejects_folder_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "dir" / "rejects.csv"

    with pytest.raises(RejectsFileError) as caught:
        check_rejects_path(path)

    assert f"Create {path.parent} first" in str(caught.value)
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc, where no file can be created")
def test_rejects_path_that_cannot_be_created() -> None:
    with pytest.raises(RejectsFileError) as caught:
        check_rejects_path(Path("/proc/x.csv"))

    assert "the rejects file /proc/x.csv cannot be written" in str(caught.value)


def test_rejects_check_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "rejects.csv"

    check_rejects_path(path)

    assert not path.exists()


def test_rejects_check_keeps_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "rejects.csv"
    path.write_text("earlier\n", encoding="utf-8")

    check_rejects_path(path)

    assert path.read_text(encoding="utf-8") == "earlier\n"


def test_rejects_writer_wraps_os_error(tmp_path: Path) -> None:
    with pytest.raises(RejectsFileError):
        RejectsWriter(tmp_path / "missing" / "rejects.csv", HEADER)

    assert os.listdir(tmp_path) == []
