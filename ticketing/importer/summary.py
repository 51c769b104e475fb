"""Counts of one import, printed as a table at the end and logged as one line."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from ticketing.importer.quirks import Quirk

# Reasons for rows that were read but not applied to a ticket.
SKIP_DUPLICATE = "exact duplicate row"
SKIP_MALFORMED = "malformed row (--skip-invalid)"
SKIP_BEYOND_LIMIT = "case beyond --limit-cases"
SKIP_REJECTED_TICKET = "row of a ticket the domain rejected (--skip-invalid)"
SKIP_BLANK_LINE = "blank line"


@dataclass
class ImportSummary:
    file: str
    mapping: str
    rows_read: int = 0
    rows_applied: int = 0
    """Rows whose commands ran on a new ticket, or were added to a stored one."""
    rows_already_applied: int = 0
    """Rows that an earlier import stored, so their commands changed nothing."""
    rows_skipped: Counter[str] = field(default_factory=Counter)
    cases: int = 0
    tickets_new: int = 0
    tickets_extended: int = 0
    tickets_unchanged: int = 0
    tickets_rejected: int = 0
    commands_issued: int = 0
    """Commands run on new tickets and new rows. A few store no event, such as a repeated assignment."""
    commands_already_applied: int = 0
    """Commands of rows that an earlier import stored, which the idempotency keys turned into no-ops."""
    commands_not_needed: Counter[str] = field(default_factory=Counter)
    commands_skipped: Counter[str] = field(default_factory=Counter)
    events_stored: Counter[str] = field(default_factory=Counter)
    quirks: Counter[Quirk] = field(default_factory=Counter)
    transactions: int = 0
    elapsed_seconds: float = 0.0

    @property
    def events_stored_total(self) -> int:
        return sum(self.events_stored.values())

    def log_fields(self) -> dict[str, Any]:
        """Return the counts as flat fields for the canonical log line."""
        return {
            "rows_read": self.rows_read,
            "rows_applied": self.rows_applied,
            "rows_already_applied": self.rows_already_applied,
            "rows_skipped": dict(self.rows_skipped),
            "cases": self.cases,
            "tickets_new": self.tickets_new,
            "tickets_extended": self.tickets_extended,
            "tickets_unchanged": self.tickets_unchanged,
            "tickets_rejected": self.tickets_rejected,
            "commands_issued": self.commands_issued,
            "commands_already_applied": self.commands_already_applied,
            "events_stored": self.events_stored_total,
            "quirks": {str(quirk): count for quirk, count in self.quirks.items()},
            "transactions": self.transactions,
            "elapsed_seconds": round(self.elapsed_seconds, 2),
        }

    def tables(self) -> list[Table]:
        """Return the summary as rich tables: totals, then each breakdown that has entries."""
        tables = [self._totals()]
        breakdowns = [
            ("Rows skipped, by reason", self.rows_skipped),
            ("Commands not needed, by reason", self.commands_not_needed),
            ("Commands skipped, by reason", self.commands_skipped),
            ("Events stored, by type", self.events_stored),
        ]
        tables.extend(_breakdown(title, counts) for title, counts in breakdowns if counts)
        if self.quirks:
            tables.append(self._quirks())
        return tables

    def _totals(self) -> Table:
        table = Table(title=f"Import of {self.file}", title_justify="left")
        table.add_column("Count")
        table.add_column("Value", justify="right")
        rows = [
            ("rows read", self.rows_read),
            ("rows applied", self.rows_applied),
            ("rows already imported", self.rows_already_applied),
            ("rows skipped", sum(self.rows_skipped.values())),
            ("cases", self.cases),
            ("tickets stored new", self.tickets_new),
            ("tickets extended (stored before)", self.tickets_extended),
            ("tickets already imported", self.tickets_unchanged),
            ("tickets rejected", self.tickets_rejected),
            ("commands issued", self.commands_issued),
            ("commands already applied", self.commands_already_applied),
            ("events stored", self.events_stored_total),
            ("transactions", self.transactions),
            ("seconds", f"{self.elapsed_seconds:.1f}"),
        ]
        for name, value in rows:
            table.add_row(name, f"{value:,}" if isinstance(value, int) else value)
        return table

    def _quirks(self) -> Table:
        table = Table(title="Quirks, by kind", title_justify="left")
        table.add_column("Kind")
        table.add_column("Count", justify="right")
        table.add_column("Handling")
        for quirk in Quirk:
            if self.quirks[quirk]:
                table.add_row(str(quirk), f"{self.quirks[quirk]:,}", quirk.description)
        return table


def _breakdown(title: str, counts: Counter[str]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("Reason" if "reason" in title else "Type")
    table.add_column("Count", justify="right")
    for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(name, f"{count:,}")
    return table
