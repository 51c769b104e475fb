"""Errors of the importer.

Every message names the file, and where one applies the line, column or mapping key,
and gives the next step, so that the command line can print it unchanged.
"""

from __future__ import annotations

from pathlib import Path


class ImporterError(Exception):
    """Base class of every error that stops an import."""


class MappingError(ImporterError, ValueError):
    """The mapping file is missing, is not valid YAML or does not follow the mapping format."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        location = f"{path}: {key}" if key else str(path)
        super().__init__(f"{location}: {problem}")
        self.path = str(path)
        self.key = key
        self.problem = problem


class ColumnError(ImporterError):
    """The log's header lacks a column that the mapping names, or names it ambiguously."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


class SourceError(ImporterError):
    """The log cannot be opened or decoded."""


class RejectsFileError(ImporterError):
    """The rejects file cannot be written at the path given."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(message)
        self.path = str(path)


class InvalidRowError(ImporterError):
    """A malformed row stops the import, because --skip-invalid was not given."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(
            f"{path} line {line}: {reason}. Fix the row, or pass --skip-invalid to "
            f"skip malformed rows and list them in a rejects file."
        )
        self.path = str(path)
        self.line = line
        self.reason = reason


class TicketImportError(ImporterError):
    """The domain rejected a command of a ticket in a way that no recovery rule covers.

    None of that ticket's commands are stored. Tickets stored before it stay stored.
    """

    def __init__(self, path: Path | str, case: str, line: int, reason: str) -> None:
        ending = "" if reason.rstrip().endswith(".") else "."
        super().__init__(
            f"{path} line {line}: case {case!r} was not imported: {reason.rstrip()}{ending} The tickets "
            f"before it are stored. Fix the case's rows, or pass --skip-invalid to import the other "
            f"tickets and list the rows of rejected ones in a rejects file."
        )
        self.path = str(path)
        self.case = case
        self.line = line
        self.reason = reason
