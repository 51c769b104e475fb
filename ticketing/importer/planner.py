"""Turn checked rows into one plan per case: the rows to apply, with their actions.

The plan is pure: it needs no event store. It groups rows by case, drops exact
duplicates and picks the actions of each row from the mapping. It also marks the
quirks that the rows alone show: ties, a first row that is not a creation, and a row
that names another customer. Quirks that depend on the ticket's state, such as activity
after closing, are handled by the executor.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import structlog

from ticketing.importer import keys
from ticketing.importer.actions import Action, ActionKind
from ticketing.importer.mapping import Mapping, Mode
from ticketing.importer.quirks import Quirk
from ticketing.importer.reader import SourceRow
from ticketing.importer.timestamps import LocalTimeIssue

log = structlog.get_logger(__name__)

DUPLICATE_ROW = "exact duplicate of an earlier row of the case"

_LOCAL_TIME_QUIRKS = {
    LocalTimeIssue.AMBIGUOUS: Quirk.AMBIGUOUS_LOCAL_TIME,
    LocalTimeIssue.NONEXISTENT: Quirk.NONEXISTENT_LOCAL_TIME,
}


@dataclass(frozen=True)
class RowPlan:
    row: SourceRow
    key: str
    actions: tuple[Action, ...]
    # The ticket does not exist yet and the row's actions do not open it.
    implicit_open: bool = False
    # The row names another customer than the ticket's first row. Its activity is
    # imported, but its customer and attribute values are not taken.
    foreign_customer: bool = False
    # The ticket's department at this row, which the agent of the row needs.
    department: str = ""
    # The row's time is earlier than the previous row of its case.
    out_of_order: bool = False


@dataclass
class CasePlan:
    case: str
    ticket_id: UUID
    customer: str
    department: str
    rows: list[RowPlan]
    duplicates: list[SourceRow] = field(default_factory=list)
    quirks: Counter[Quirk] = field(default_factory=Counter)

    @property
    def opened_at(self) -> datetime:
        return self.rows[0].row.occurred_at

    @property
    def first_line(self) -> int:
        return self.rows[0].row.line

    def source_rows(self) -> list[SourceRow]:
        """Return every row of the case, duplicates included, in file order."""
        return sorted([plan.row for plan in self.rows] + self.duplicates, key=lambda row: row.line)


def plan_cases(rows: list[SourceRow], mapping: Mapping) -> list[CasePlan]:
    """Group rows by case, in order of each case's first row, and plan each case."""
    groups: dict[str, list[SourceRow]] = {}
    non_contiguous: set[str] = set()
    previous_case: str | None = None
    for row in rows:
        if row.case != previous_case and row.case in groups:
            non_contiguous.add(row.case)
        groups.setdefault(row.case, []).append(row)
        previous_case = row.case

    plans = []
    for case, case_rows in groups.items():
        plan = plan_case(case, case_rows, mapping)
        if case in non_contiguous:
            plan.quirks[Quirk.NON_CONTIGUOUS_CASE] += 1
        plans.append(plan)

    if non_contiguous:
        log.warning(
            "rows of some cases are not contiguous, grouping them by case",
            cases=len(non_contiguous),
            first_cases=sorted(non_contiguous)[:10],
        )
    return plans


def plan_case(case: str, rows: list[SourceRow], mapping: Mapping) -> CasePlan:
    """Plan one case from its rows in file order."""
    first = rows[0]
    plan = CasePlan(
        case=case,
        ticket_id=keys.ticket_id(mapping.name, case),
        customer=first.customer,
        department=first.department,
        rows=[],
    )
    occurrences: Counter[str] = Counter()
    department = first.department
    previous: SourceRow | None = None

    for row in rows:
        occurrence = occurrences[row.content]
        occurrences[row.content] += 1
        if occurrence > 0:
            plan.duplicates.append(row)
            continue

        foreign = row.customer != plan.customer
        if not foreign:
            department = row.department
        actions = _actions(row, previous, mapping)
        implicit_open = previous is None and (not actions or actions[0].kind is not ActionKind.OPEN)

        plan.rows.append(
            RowPlan(
                row=row,
                key=keys.row_key(mapping.name, row.content, occurrence),
                actions=actions,
                implicit_open=implicit_open,
                foreign_customer=foreign,
                department=department,
                out_of_order=previous is not None and row.occurred_at < previous.occurred_at,
            )
        )
        _count_row_quirks(plan.quirks, row, previous, implicit_open, foreign)
        previous = row

    return plan


def _actions(row: SourceRow, previous: SourceRow | None, mapping: Mapping) -> tuple[Action, ...]:
    """Return the row's actions: per activity in events mode, per status change in snapshot mode."""
    actions = mapping.commands[row.label]
    if mapping.mode is Mode.EVENTS or previous is None:
        return actions

    # A snapshot row repeats the ticket's state, so only a change of state is a command.
    changed = actions if row.label != previous.label else ()
    reassigned = (
        mapping.assign_on_resource_change
        and row.resource
        and row.resource != previous.resource
        and not any(action.kind is ActionKind.ASSIGN for action in changed)
    )
    if reassigned:
        return (*changed, Action(ActionKind.ASSIGN))
    return changed


def _count_row_quirks(
    quirks: Counter[Quirk],
    row: SourceRow,
    previous: SourceRow | None,
    implicit_open: bool,
    foreign: bool,
) -> None:
    if implicit_open:
        quirks[Quirk.IMPLICIT_OPEN] += 1
    if foreign:
        quirks[Quirk.CUSTOMER_CHANGED] += 1
    if previous is not None and row.occurred_at == previous.occurred_at:
        quirks[Quirk.TIMESTAMP_TIE] += 1
    if row.local_time_issue is not None:
        quirks[_LOCAL_TIME_QUIRKS[row.local_time_issue]] += 1
