"""Run an import: read, plan, drive each ticket in memory, save tickets in batches.

A batch is one `app.save(...)` call, which eventsourcing stores in one database
transaction. A batch contains whole tickets only, together with the agents and customers
they refer to that have unsaved events, so a ticket's commands are stored all together
or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast
from uuid import UUID

import structlog
from eventsourcing.persistence import PersistenceError

from domain.ticket import Ticket
from ticketing.application import HelpdeskApplication
from ticketing.importer.directory import Directory
from ticketing.importer.errors import ImporterError, InvalidRowError, TicketImportError
from ticketing.importer.executor import (
    IMPLICIT_ASSIGN_LABEL,
    TicketOutcome,
    TicketRejected,
    drive_ticket,
    is_fully_applied,
    missing_implicit_steps,
    replay,
    rows_already_applied,
)
from ticketing.importer.mapping import Mapping
from ticketing.importer.people import plan_people
from ticketing.importer.planner import CasePlan, plan_cases
from ticketing.importer.reader import LogContents, read_log
from ticketing.importer.quirks import Quirk
from ticketing.importer.rejects import RejectsWriter, check_rejects_path
from ticketing.importer.summary import (
    SKIP_BEYOND_LIMIT,
    SKIP_BLANK_LINE,
    SKIP_DUPLICATE,
    SKIP_MALFORMED,
    SKIP_REJECTED_TICKET,
    ImportSummary,
)

log = structlog.get_logger(__name__)

# Tickets per transaction. Larger batches mean fewer round trips. The helpdesk log's
# tickets have about five events each, so a batch writes some 250 events.
DEFAULT_BATCH_SIZE = 50

# Malformed rows and rejected tickets logged one by one. The rejects file lists them
# all, so the log stays readable when a whole file is malformed.
MAX_LOGGED_REJECTS = 20


class ProgressReporter(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, count: int = 1) -> None: ...


class _NoProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass


@dataclass(frozen=True)
class ImportOptions:
    skip_invalid: bool = False
    rejects_path: Path | None = None
    limit_cases: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if self.skip_invalid and self.rejects_path is None:
            raise ValueError("skip_invalid needs rejects_path, the file that lists the skipped rows.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, but is {self.batch_size}.")
        if self.limit_cases is not None and self.limit_cases < 1:
            raise ValueError(f"limit_cases must be at least 1, but is {self.limit_cases}.")


@dataclass
class _Batch:
    tickets: list[Ticket] = field(default_factory=list)
    outcomes: list[TicketOutcome] = field(default_factory=list)
    # Per outcome: how many of its first rows an earlier import stored, and the commands of those rows.
    rows_already_applied: list[int] = field(default_factory=list)
    commands_already_applied: list[int] = field(default_factory=list)
    commands_left_out: list[int] = field(default_factory=list)
    new: int = 0
    extended: int = 0
    unchanged: int = 0
    agent_ids: set[UUID] = field(default_factory=set)
    customer_ids: set[UUID] = field(default_factory=set)

    def add(
        self, outcome: TicketOutcome, ticket: Ticket | None, rows_already_applied: int = 0, commands_left_out: int = 0
    ) -> None:
        """Add a ticket's outcome. `commands_left_out` are commands of those rows counted as skipped instead."""
        self.outcomes.append(outcome)
        self.rows_already_applied.append(rows_already_applied)
        self.commands_already_applied.append(
            sum(outcome.commands_by_line[row.row.line] for row in outcome.plan.rows[:rows_already_applied])
            - commands_left_out
        )
        self.commands_left_out.append(commands_left_out)
        if ticket is not None:
            self.tickets.append(ticket)
        self.agent_ids.update(outcome.agent_ids)
        self.customer_ids.update(outcome.customer_ids)

    def __len__(self) -> int:
        return len(self.outcomes)


class ImportRun:
    """One import of one log. `summary` has the counts so far, also after an error."""

    def __init__(
        self,
        app: HelpdeskApplication,
        mapping: Mapping,
        path: Path,
        options: ImportOptions | None = None,
        progress: ProgressReporter | None = None,
    ) -> None:
        self.app = app
        self.mapping = mapping
        self.path = path
        self.options = options or ImportOptions()
        self.progress = progress or _NoProgress()
        self.summary = ImportSummary(file=str(path), mapping=mapping.path)
        self.log = log.bind(file=str(path), mapping=mapping.path)

    def run(self) -> ImportSummary:
        """Import the log; raise an ImporterError subclass if it stops early."""
        started = time.monotonic()
        rejects: RejectsWriter | None = None
        try:
            if self.options.skip_invalid and self.options.rejects_path is not None:
                # Before the log is read, which takes seconds for a large log.
                check_rejects_path(self.options.rejects_path)
            contents = read_log(self.path, self.mapping, limit_cases=self.options.limit_cases)
            self._count_read(contents)
            if self.options.skip_invalid and self.options.rejects_path is not None:
                rejects = RejectsWriter(self.options.rejects_path, contents.header)
            self._handle_invalid(contents, rejects)

            cases = plan_cases(contents.rows, self.mapping)
            self.summary.cases = len(cases)
            self.summary.rows_skipped[SKIP_DUPLICATE] += sum(len(case.duplicates) for case in cases)
            self.log.info("import started", rows=contents.rows_read, cases=len(cases))
            self._import_cases(cases, rejects)
        finally:
            if rejects is not None:
                rejects.close()
            self.summary.rows_skipped = +self.summary.rows_skipped  # drop zero counts
            self.summary.elapsed_seconds = time.monotonic() - started

        self.log.info("import finished", **self.summary.log_fields())
        return self.summary

    def _count_read(self, contents: LogContents) -> None:
        self.summary.rows_read = contents.rows_read
        self.summary.rows_skipped[SKIP_BLANK_LINE] += contents.blank_lines
        self.summary.rows_skipped[SKIP_BEYOND_LIMIT] += contents.rows_beyond_limit

    def _handle_invalid(self, contents: LogContents, rejects: RejectsWriter | None) -> None:
        """Stop on the first malformed row, or with --skip-invalid list them all in the rejects file."""
        if not contents.invalid:
            return
        if rejects is None:
            first = contents.invalid[0]
            more = len(contents.invalid) - 1
            reason = first.reason + (f" ({more} more malformed rows follow)" if more else "")
            raise InvalidRowError(self.path, first.line, reason)

        for row in contents.invalid:
            rejects.write(row.line, row.reason, row.fields)
        for row in contents.invalid[:MAX_LOGGED_REJECTS]:
            self.log.warning("malformed row skipped", line=row.line, reason=row.reason)
        if len(contents.invalid) > MAX_LOGGED_REJECTS:
            self.log.warning(
                "more malformed rows skipped, listed only in the rejects file",
                count=len(contents.invalid) - MAX_LOGGED_REJECTS,
                rejects=str(rejects.path),
            )
        self.summary.rows_skipped[SKIP_MALFORMED] += len(contents.invalid)

    def _import_cases(self, cases: list[CasePlan], rejects: RejectsWriter | None) -> None:
        directory = Directory(self.app, self.mapping, plan_people(cases, self.mapping))
        self.progress.start(len(cases))
        batch = _Batch()

        for case in cases:
            try:
                self._import_case(case, directory, batch)
            except TicketRejected as rejection:
                if rejects is None:
                    # The tickets before this one are complete, so they are kept.
                    self._save(batch, directory)
                    self.summary.tickets_rejected += 1
                    raise TicketImportError(self.path, case.case, rejection.line, rejection.reason) from rejection
                self._reject_case(case, rejection, rejects)

            self.progress.advance()
            if len(batch) >= self.options.batch_size:
                self._save(batch, directory)
                batch = _Batch()

        self._save(batch, directory)
        self.summary.quirks.update(directory.quirks)

    def _import_case(self, case: CasePlan, directory: Directory, batch: _Batch) -> None:
        outcome = drive_ticket(case, self.mapping, directory)
        # load_or_none raises NotFound when the id belongs to another aggregate type.
        stored = cast("Ticket | None", self.app.load_or_none(case.ticket_id, Ticket))
        if stored is None:
            batch.add(outcome, outcome.ticket)
            batch.new += 1
            return

        left_out = _count_left_out_assignments(outcome, stored)
        if is_fully_applied(outcome, stored):
            batch.add(outcome, None, rows_already_applied=len(case.rows), commands_left_out=left_out)
            batch.unchanged += 1
        else:
            already = rows_already_applied(outcome, stored)
            replay(outcome, stored)
            batch.add(outcome, stored, rows_already_applied=already, commands_left_out=left_out)
            batch.extended += 1

    def _reject_case(self, case: CasePlan, rejection: TicketRejected, rejects: RejectsWriter) -> None:
        reason = f"ticket of case {case.case!r} rejected at line {rejection.line}: {rejection.reason}"
        for plan in case.rows:
            rejects.write(plan.row.line, reason, plan.row.fields)
        self.summary.tickets_rejected += 1
        self.summary.rows_skipped[SKIP_REJECTED_TICKET] += len(case.rows)
        if self.summary.tickets_rejected <= MAX_LOGGED_REJECTS:
            self.log.warning(
                "ticket rejected, its rows written to the rejects file",
                case=case.case,
                line=rejection.line,
                reason=rejection.reason,
            )

    def _save(self, batch: _Batch, directory: Directory) -> None:
        """Store the batch in one transaction, then add its counts to the summary."""
        if not batch:
            return
        # People first, so that in the notification log an agent's or customer's
        # creation comes before the first ticket event that refers to it.
        people = directory.pending(batch.agent_ids, batch.customer_ids)
        aggregates = [*people, *batch.tickets]
        if any(aggregate.pending_events for aggregate in aggregates):
            try:
                recordings = self.app.save(*aggregates)
            except PersistenceError as error:
                raise ImporterError(
                    f"{self.path}: storing a batch of {len(batch)} tickets (cases "
                    f"{batch.outcomes[0].plan.case!r} to {batch.outcomes[-1].plan.case!r}) failed, "
                    f"so none of them was stored: {error}. Run the import again: it skips what is stored."
                ) from error
            self.summary.events_stored.update(_event_types(recording.domain_event for recording in recordings))
            self.summary.transactions += 1
            self.log.debug("batch stored", tickets=len(batch), events=len(recordings))

        self._count_batch(batch)

    def _count_batch(self, batch: _Batch) -> None:
        summary = self.summary
        summary.tickets_new += batch.new
        summary.tickets_extended += batch.extended
        summary.tickets_unchanged += batch.unchanged
        for outcome, rows_already, commands_already, left_out in zip(
            batch.outcomes, batch.rows_already_applied, batch.commands_already_applied, batch.commands_left_out
        ):
            summary.rows_applied += len(outcome.plan.rows) - rows_already
            summary.rows_already_applied += rows_already
            summary.commands_issued += outcome.commands - commands_already - left_out
            summary.commands_already_applied += commands_already
            summary.commands_not_needed.update(outcome.not_needed)
            summary.commands_skipped.update(outcome.skipped)
            summary.quirks.update(outcome.quirks)


def _count_left_out_assignments(outcome: TicketOutcome, stored: Ticket) -> int:
    """Count the implicit assignments that a ticket stored by an earlier import keeps without, and return them."""
    left_out = len(missing_implicit_steps(outcome, stored))
    if left_out:
        outcome.quirks[Quirk.IMPLICIT_ASSIGN] -= left_out
        outcome.quirks = +outcome.quirks  # drop a zero count
        outcome.skipped[f"{IMPLICIT_ASSIGN_LABEL}: ticket stored before by an import without it"] += left_out
    return left_out


def _event_types(events: Iterable[object]) -> list[str]:
    # The qualified name of a nested event class is "<Aggregate>.<Event>", the wire name.
    return [type(event).__qualname__ for event in events]
