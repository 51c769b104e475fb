"""The rejects file: rows that --skip-invalid left out, with their line number and reason."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO


class RejectsWriter:
    """Write rejected rows as CSV: line, reason, then the row's original fields."""

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = path
        self.count = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: TextIO = path.open("w", encoding="utf-8", newline="")
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
