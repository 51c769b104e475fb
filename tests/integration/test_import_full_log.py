"""Import of the whole helpdesk log: 21,348 rows, 4,580 tickets, then a second import.

This is the slowest import test (two full imports, each some seconds against a local
PostgreSQL). Every expected figure is computed here from the CSV with the csv module.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from ticketing.application import HelpdeskApplication
from ticketing.importer.quirks import Quirk
from ticketing.importer.runner import ImportRun
from ticketing.settings import Settings
from tests.integration.test_import import (
    MAPPING,
    case_assignments,
    check_against_figures,
    figures_from_csv,
    stored_events,
)

CREATION_ACTIVITIES = {"Insert ticket", "Assign seriousness"}

# The import must finish within this many seconds, the target for this log on two cores.
MAX_IMPORT_SECONDS = 120

NEVER_CLOSED = (
    Quirk.NEVER_CLOSED_OPEN,
    Quirk.NEVER_CLOSED_PENDING,
    Quirk.NEVER_CLOSED_ON_HOLD,
    Quirk.NEVER_CLOSED_RESOLVED,
)


@pytest.fixture
def app(base_settings: Settings, database_url: str, pg_schema: str) -> Iterator[HelpdeskApplication]:
    settings = dataclasses.replace(base_settings, event_store_schema=pg_schema)
    application = HelpdeskApplication(env=settings.eventsourcing_env())
    yield application
    application.close()


@dataclasses.dataclass
class RowFigures:
    rows: int
    duplicates: int
    implicit_opens: int
    foreign_customer_rows: int
    ties: int
    cases_without_close: int
    implicit_assignments: int


def row_figures(path: Path) -> RowFigures:
    with path.open(encoding="utf-8", newline="") as handle:
        records = list(csv.reader(handle))[1:]
    cases: dict[str, list[list[str]]] = {}
    for record in records:
        cases.setdefault(record[0], []).append(record)

    figures = RowFigures(len(records), 0, 0, 0, 0, 0, 0)
    for rows in cases.values():
        unique = list(dict.fromkeys(tuple(record) for record in rows))
        figures.duplicates += len(rows) - len(unique)
        figures.implicit_opens += unique[0][1] not in CREATION_ACTIVITIES
        figures.foreign_customer_rows += sum(record[8] != unique[0][8] for record in unique)
        figures.ties += sum(earlier[3] == later[3] for earlier, later in zip(unique, unique[1:]))
        figures.cases_without_close += all(record[1] != "Closed" for record in unique)
        figures.implicit_assignments += sum(
            activity != "Take in charge ticket" for _, activity in case_assignments(unique)
        )
    return figures


def test_full_log_imports_every_case(app: HelpdeskApplication, helpdesk_csv: Path) -> None:
    summary = ImportRun(app, MAPPING, helpdesk_csv).run()

    events = stored_events(app)
    check_against_figures(events, figures_from_csv(helpdesk_csv))
    rows = row_figures(helpdesk_csv)
    assert summary.rows_read == rows.rows
    assert summary.rows_skipped == {"exact duplicate row": rows.duplicates}
    assert summary.rows_applied == rows.rows - rows.duplicates
    assert summary.tickets_new == 4_580
    assert summary.tickets_rejected == 0
    assert summary.events_stored_total == len(events)
    assert summary.quirks[Quirk.IMPLICIT_OPEN] == rows.implicit_opens
    assert summary.quirks[Quirk.CUSTOMER_CHANGED] == rows.foreign_customer_rows
    assert summary.quirks[Quirk.TIMESTAMP_TIE] == rows.ties
    assert summary.quirks[Quirk.IMPLICIT_ASSIGN] == rows.implicit_assignments
    # A case without a Closed row can end in any status but closed. A case whose last
    # Closed is followed by work ends open, so the sum can exceed the count.
    assert sum(summary.quirks[quirk] for quirk in NEVER_CLOSED) >= rows.cases_without_close
    assert summary.elapsed_seconds < MAX_IMPORT_SECONDS
    print(f"full import: {summary.elapsed_seconds:.1f} s, {summary.events_stored_total} events")

    again = ImportRun(app, MAPPING, helpdesk_csv).run()

    assert again.events_stored_total == 0
    assert again.tickets_unchanged == 4_580
    assert len(stored_events(app)) == len(events)
    assert again.commands_issued == 0
    assert again.commands_already_applied == summary.commands_issued
    assert again.rows_applied == 0
    assert again.rows_already_applied == summary.rows_applied
