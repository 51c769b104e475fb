"""The rejects file: rows that --skip-invalid left out, with their line number and reason."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

from ticketing.importer.errors import RejectsFileError


def check_rejects_path(path: Path) -> None:
    """Raise RejectsFileError unless a rejects file can be written at `path`.

    Missing folders are not created, so that a mistyped path fails here instead of
    leaving a new folder behind. The check opens the file for appending, which
    changes nothing in an existing file, and removes a file that it created.
    """
    if path.is_dir():
        raise RejectsFileError(
            path, f"the rejects file {path} is a folder. Pass a file path, such as {path / 'rejects.csv'}."
        )
    if not path.parent.is_dir():
        raise RejectsFileError(
            path,
            f"the folder of the rejects file {path} does not exist. Create {path.parent} first, "
            f"or pass a path in an existing folder.",
        )

    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as error:
        raise _unwritable(path, error) from error
    if not existed:
        path.unlink(missing_ok=True)


def _unwritable(path: Path, error: OSError) -> RejectsFileError:
    return RejectsFileError(
        path,
        f"the rejects file {path} cannot be written ({error.strerror or error}). "
        f"Pass a path in a folder you can write to.",
    )


class RejectsWriter:
    """Write rejected rows as CSV: line, reason, then the row's original fields."""

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = path
        self.count = 0
        try:
            self._handle: TextIO = path.open("w", encoding="utf-8", newline="")
        except OSError as error:
            raise _unwritable(path, error) from error
        self._writer = csv.writer(self._handle)
        self._writer.writerow(["line", "reason", *header])

    def write(self, line: int, reason: str, fields: Sequence[str]) -> None:
        self._writer.writerow([line, reason, *fields])
        self.count += 1

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
