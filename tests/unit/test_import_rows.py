"""Importer without a database: reading rows, planning cases and driving tickets in memory.

Each test writes a small log in the helpdesk log's 16-column layout, with `Variant`
twice, and reads it with the shipped mapping or a variant of it. So every quirk and
every malformed row is exercised on exactly the rows that show it.
"""

from __future__ import annotations

import copy
import csv
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from domain.agent import Agent
from domain.customer import Customer
from domain.errors import NotFound
from domain.ticket import Ticket
from domain.values import Priority, ReplyVisibility, Resolution, TicketStatus
from ticketing.importer import keys
from ticketing.importer.directory import Directory
from ticketing.importer.errors import ColumnError, SourceError
from ticketing.importer.executor import TicketOutcome, TicketRejected, drive_ticket, is_fully_applied, replay
from ticketing.importer.mapping import Mapping, default_mapping_path, load_mapping, parse_mapping
from ticketing.importer.people import plan_people
from ticketing.importer.planner import CasePlan, plan_cases
from ticketing.importer.quirks import Quirk
from ticketing.importer.reader import LogContents, read_log
from ticketing.importer.recovery import RecoveryKind, recovery_for

HEADER = [
    "Case ID",
    "Activity",
    "Resource",
    "Complete Timestamp",
    "Variant",
    "Variant index",
    "Variant",
    "seriousness",
    "customer",
    "product",
    "responsible_section",
    "seriousness_2",
    "service_level",
    "service_type",
    "support_section",
    "workgroup",
]

MAPPING = load_mapping(default_mapping_path())
SHIPPED_DOCUMENT = yaml.safe_load(default_mapping_path().read_text(encoding="utf-8"))


def row(
    case: str,
    activity: str,
    resource: str,
    time: str,
    *,
    customer: str = "Value 1",
    section: str = "Value 1",
    seriousness_2: str = "Value 1",
    product: str = "Value 1",
    variant: str = "Variant 1",
) -> list[str]:
    return [
        case,
        activity,
        resource,
        time,
        variant,
        variant.split()[-1],
        variant,
        "Value 1",
        customer,
        product,
        section,
        seriousness_2,
        "Value 1",
        "Value 1",
        "Value 1",
        "Value 1",
    ]


def write_log(directory: Path, rows: Iterable[Sequence[str]], *, header: Sequence[str] = HEADER, name: str = "log.csv") -> Path:
    path = directory / name
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def mapping_variant(**changes: Any) -> Mapping:
    """Return the shipped mapping with top-level keys replaced, or merged for dicts."""
    document = copy.deepcopy(SHIPPED_DOCUMENT)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key].update(value)
        else:
            document[key] = value
    return parse_mapping(document, path="variant.yaml")


class InMemoryStore:
    """Stand-in for HelpdeskApplication.load_or_none, with aggregates that an earlier import stored."""

    def __init__(self, *aggregates: Any) -> None:
        self.aggregates = {aggregate.id: aggregate for aggregate in aggregates}

    def load_or_none(self, aggregate_id: UUID, aggregate_class: type | None = None) -> Any:
        aggregate = self.aggregates.get(aggregate_id)
        if aggregate is not None and aggregate_class is not None and not isinstance(aggregate, aggregate_class):
            raise NotFound("wrong type", aggregate_id=aggregate_id)
        return aggregate


def read(path: Path, mapping: Mapping = MAPPING, **options: Any) -> LogContents:
    return read_log(path, mapping, **options)


def plan(path: Path, mapping: Mapping = MAPPING) -> list[CasePlan]:
    contents = read(path, mapping)
    assert contents.invalid == []
    return plan_cases(contents.rows, mapping)


def drive(path: Path, mapping: Mapping = MAPPING, store: InMemoryStore | None = None) -> tuple[list[TicketOutcome], Directory]:
    cases = plan(path, mapping)
    directory = Directory(store or InMemoryStore(), mapping, plan_people(cases, mapping))  # type: ignore[arg-type]
    return [drive_ticket(case, mapping, directory) for case in cases], directory


def drive_one(path: Path, mapping: Mapping = MAPPING) -> TicketOutcome:
    outcomes, _ = drive(path, mapping)
    assert len(outcomes) == 1
    return outcomes[0]


def event_names(aggregate: Any) -> list[str]:
    return [type(event).__name__ for event in aggregate.pending_events]


def events_of(aggregate: Any, name: str) -> list[Any]:
    return [event for event in aggregate.pending_events if type(event).__name__ == name]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


# Reading rows.


def test_rows_read_with_utc_times(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/10/9 14:50:17"),
            row("Case 1", "Take in charge ticket", "Value 2", "2012/1/9 8:05:00", seriousness_2="Value 2"),
        ],
    )

    contents = read(path)

    assert contents.rows_read == 2
    assert contents.invalid == []
    first, second = contents.rows
    assert first.line == 2
    assert second.line == 3
    assert first.occurred_at == utc(2012, 10, 9, 12, 50, 17)
    assert second.occurred_at == utc(2012, 1, 9, 7, 5)
    assert first.department == "Value 1"
    assert second.attributes["seriousness_2"] == "Value 2"
    assert set(first.attributes) == set(MAPPING.attributes)


def test_duplicate_header_name_needs_occurrence(tmp_path: Path) -> None:
    path = write_log(tmp_path, [row("Case 1", "Closed", "Value 5", "2012/1/1 10:00:00")])
    mapping = mapping_variant(attributes={"variant": "Variant"})

    with pytest.raises(ColumnError) as caught:
        read(path, mapping)

    message = str(caught.value)
    assert "'Variant'" in message
    assert "positions 5, 7" in message
    assert "occurrence" in message


def test_duplicate_header_occurrence_picks_column(tmp_path: Path) -> None:
    record = row("Case 1", "Insert ticket", "Value 5", "2012/1/1 10:00:00")
    record[4] = "first"
    record[6] = "second"
    path = write_log(tmp_path, [record])
    mapping = mapping_variant(attributes={"variant": {"name": "Variant", "occurrence": 2}})

    (parsed,) = read(path, mapping).rows

    assert parsed.attributes["variant"] == "second"


def test_missing_column_names_file_and_fix(tmp_path: Path) -> None:
    header = [name if name != "customer" else "client" for name in HEADER]
    path = write_log(tmp_path, [row("Case 1", "Closed", "Value 5", "2012/1/1 10:00:00")], header=header)

    with pytest.raises(ColumnError) as caught:
        read(path)

    message = str(caught.value)
    assert str(path) in message
    assert "column 'customer'" in message
    assert "columns.customer" in message
    assert "'client'" in message
    assert "--mapping" in message


def test_short_row_invalid(tmp_path: Path) -> None:
    path = write_log(tmp_path, [row("Case 1", "Closed", "Value 5", "2012/1/1 10:00:00")[:15]])

    (invalid,) = read(path).invalid

    assert invalid.line == 2
    assert invalid.reason == "short row: 15 fields, but the header has 16"
    assert len(invalid.fields) == 15


def test_long_row_invalid(tmp_path: Path) -> None:
    path = write_log(tmp_path, [[*row("Case 1", "Closed", "Value 5", "2012/1/1 10:00:00"), "extra"]])

    (invalid,) = read(path).invalid

    assert invalid.reason.startswith("long row: 17 fields")


def test_unparsable_time_invalid(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Insert ticket", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Closed", "Value 5", "2012/02/30 10:00:00"),
        ],
    )

    contents = read(path)

    assert len(contents.rows) == 1
    (invalid,) = contents.invalid
    assert invalid.line == 3
    assert "'2012/02/30 10:00:00'" in invalid.reason
    assert "column 4 ('Complete Timestamp')" in invalid.reason
    assert "%Y/%m/%d %H:%M:%S" in invalid.reason


def test_unknown_activity_invalid(tmp_path: Path) -> None:
    path = write_log(tmp_path, [row("Case 1", "Escalate", "Value 1", "2012/1/1 10:00:00")])

    (invalid,) = read(path).invalid

    assert "unknown activity 'Escalate'" in invalid.reason
    assert "activity_commands" in invalid.reason


def test_missing_case_id_invalid(tmp_path: Path) -> None:
    path = write_log(tmp_path, [row("", "Closed", "Value 5", "2012/1/1 10:00:00")])

    (invalid,) = read(path).invalid

    assert invalid.reason == "missing value in column 1 ('Case ID')"


def test_line_numbers_after_multiline_field(tmp_path: Path) -> None:
    first = row("Case 1", "Insert ticket", "Value 1", "2012/1/1 10:00:00", product="two\nlines")
    path = write_log(tmp_path, [first, row("Case 1", "Resolve", "Value 1", "2012/1/1 11:00:00")])

    contents = read(path)

    assert contents.rows[0].line == 2
    assert contents.invalid[0].line == 4


def test_blank_lines_counted_apart(tmp_path: Path) -> None:
    path = write_log(tmp_path, [row("Case 1", "Insert ticket", "Value 1", "2012/1/1 10:00:00"), [], []])

    contents = read(path)

    assert contents.rows_read == 1
    assert contents.blank_lines == 2


def test_limit_cases_reads_first_cases(tmp_path: Path) -> None:
    rows = [row(f"Case {n}", "Insert ticket", "Value 1", "2012/1/1 10:00:00") for n in range(1, 6)]
    rows.append(row("Case 2", "Closed", "Value 5", "2012/1/2 10:00:00"))
    path = write_log(tmp_path, rows)

    contents = read(path, limit_cases=2)

    assert [parsed.case for parsed in contents.rows] == ["Case 1", "Case 2", "Case 2"]
    assert contents.rows_read == 6
    assert contents.rows_beyond_limit == 3


def test_byte_order_mark_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_text(
        "\ufeff" + ",".join(HEADER) + "\n" + ",".join(row("Case 1", "Closed", "Value 5", "2012/1/1 10:00:00")) + "\n",
        encoding="utf-8",
    )

    assert read(path).rows[0].case == "Case 1"


def test_empty_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")

    with pytest.raises(SourceError, match="empty"):
        read(path)


def test_undecodable_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    body = ",".join(HEADER) + "\n" + ",".join(row("Case 1", "Closed", "Value 5", "2012/1/1 10:00:00")) + "\n"
    path.write_bytes(body.encode("utf-8") + "Case 2,Chiusura caff\xe8\n".encode("latin-1"))

    with pytest.raises(SourceError) as caught:
        read(path)

    assert "csv.encoding" in str(caught.value)


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open"):
        read(tmp_path / "absent.csv")


def test_content_ignores_unmapped_columns(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Insert ticket", "Value 1", "2012/1/1 10:00:00", variant="Variant 7"),
            row("Case 1", "Insert ticket", "Value 1", "2012/1/1 10:00:00", variant="Variant 9"),
        ],
    )

    first, second = read(path).rows

    assert first.content == second.content


# Planning cases.


def test_duplicate_rows_skipped(tmp_path: Path) -> None:
    resolve = row("Case 18", "Resolve ticket", "Value 1", "2013/3/19 10:22:40")
    path = write_log(
        tmp_path,
        [row("Case 18", "Assign seriousness", "Value 1", "2013/3/1 10:00:00"), resolve, resolve, resolve],
    )

    (case,) = plan(path)

    assert len(case.rows) == 2
    assert [duplicate.line for duplicate in case.duplicates] == [4, 5]
    assert Quirk.TIMESTAMP_TIE not in case.quirks


def test_row_keys_count_identical_rows() -> None:
    content = '["Case 1", "Closed"]'

    assert keys.row_key("log", content, 0) != keys.row_key("log", content, 1)
    assert keys.row_key("log", content, 0) == keys.row_key("log", content, 0)
    assert keys.row_key("log", content, 0) != keys.row_key("other-log", content, 0)


def test_timestamp_tie_counted(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Take in charge ticket", "Value 1", "2012/1/1 10:00:00"),
        ],
    )

    (case,) = plan(path)

    assert case.quirks[Quirk.TIMESTAMP_TIE] == 1
    assert [plan_row.row.label for plan_row in case.rows] == ["Assign seriousness", "Take in charge ticket"]


def test_first_row_not_creation_opens_implicitly(tmp_path: Path) -> None:
    path = write_log(tmp_path, [row("Case 1", "Take in charge ticket", "Value 1", "2012/1/1 10:00:00")])

    (case,) = plan(path)

    assert case.rows[0].implicit_open
    assert case.quirks[Quirk.IMPLICIT_OPEN] == 1


def test_foreign_customer_row_flagged(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00", customer="Value 9"),
            row("Case 1", "VERIFIED", "Value 2", "2012/1/2 10:00:00", customer="Value 225"),
            row("Case 1", "Resolve ticket", "Value 2", "2012/1/3 10:00:00", customer="Value 9"),
        ],
    )

    (case,) = plan(path)

    assert case.customer == "Value 9"
    assert [plan_row.foreign_customer for plan_row in case.rows] == [False, True, False]
    assert case.quirks[Quirk.CUSTOMER_CHANGED] == 1


def test_non_contiguous_case_grouped(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Insert ticket", "Value 1", "2012/1/1 10:00:00"),
            row("Case 2", "Insert ticket", "Value 1", "2012/1/1 11:00:00"),
            row("Case 1", "Resolve ticket", "Value 1", "2012/1/2 10:00:00"),
        ],
    )

    first, second = plan(path)

    assert [plan_row.row.line for plan_row in first.rows] == [2, 4]
    assert first.quirks[Quirk.NON_CONTIGUOUS_CASE] == 1
    assert second.quirks[Quirk.NON_CONTIGUOUS_CASE] == 0


def test_row_earlier_than_previous_flagged(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Insert ticket", "Value 1", "2012/1/2 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 1", "2012/1/1 10:00:00"),
        ],
    )

    (case,) = plan(path)

    assert [plan_row.out_of_order for plan_row in case.rows] == [False, True]


def test_keys_survive_reexport(tmp_path: Path) -> None:
    rows = [
        row("Case 1", "Insert ticket", "Value 1", "2012/1/1 10:00:00"),
        row("Case 1", "Closed", "Value 5", "2012/1/2 10:00:00"),
    ]
    moved = [row("Case 0", "Insert ticket", "Value 1", "2011/1/1 10:00:00")] + [
        [*record[:4], "Variant 99", "99", "Variant 99", *record[7:]] for record in rows
    ]
    original = plan(write_log(tmp_path, rows, name="a.csv"))
    reexported = plan(write_log(tmp_path, moved, name="b.csv"))

    assert [plan_row.key for plan_row in original[0].rows] == [plan_row.key for plan_row in reexported[1].rows]


# Snapshot logs.

SNAPSHOT_HEADER = ["ticket", "state", "updated", "assignee", "requester", "team", "product"]
SNAPSHOT_MAPPING = parse_mapping(
    {
        "name": "snapshot-test",
        "mode": "snapshot",
        "columns": {
            "case": "ticket",
            "status": "state",
            "timestamp": "updated",
            "resource": "assignee",
            "customer": "requester",
            "department": "team",
        },
        "timestamp": {"format": "%Y-%m-%dT%H:%M:%S", "timezone": "UTC"},
        "attributes": {"product": "product"},
        "status_commands": {
            "new": ["open"],
            "assigned": ["assign"],
            "waiting": ["move_to_pending"],
            "solved": ["first_reply", {"resolve": "solved"}],
            "closed": ["close"],
        },
        "assign_on_resource_change": True,
    },
    path="snapshot.yaml",
)


def snapshot_log(directory: Path, rows: list[list[str]]) -> Path:
    return write_log(directory, rows, header=SNAPSHOT_HEADER, name="snapshots.csv")


def test_snapshot_commands_on_state_change(tmp_path: Path) -> None:
    path = snapshot_log(
        tmp_path,
        [
            ["T-1", "new", "2024-05-01T09:00:00", "", "ann", "billing", "app"],
            ["T-1", "assigned", "2024-05-01T09:05:00", "bob", "ann", "billing", "app"],
            ["T-1", "assigned", "2024-05-01T10:00:00", "bob", "ann", "billing", "web"],
            ["T-1", "assigned", "2024-05-01T11:00:00", "eve", "ann", "billing", "web"],
            ["T-1", "waiting", "2024-05-01T12:00:00", "eve", "ann", "billing", "web"],
            ["T-1", "solved", "2024-05-02T09:00:00", "eve", "ann", "billing", "web"],
            ["T-1", "closed", "2024-05-05T09:00:00", "eve", "ann", "billing", "web"],
        ],
    )

    outcome = drive_one(path, SNAPSHOT_MAPPING)

    assert event_names(outcome.ticket) == [
        "Opened",
        "Assigned",
        "AttributesChanged",
        "Assigned",
        "MovedToPending",
        "AgentReplied",
        "Resolved",
        "Closed",
    ]
    bob, eve = (keys.agent_id("snapshot-test", name) for name in ("bob", "eve"))
    assert [event.agent_id for event in events_of(outcome.ticket, "Assigned")] == [bob, eve]
    assert outcome.quirks[Quirk.ATTRIBUTES_CHANGED] == 1


def test_snapshot_unknown_status_invalid(tmp_path: Path) -> None:
    path = snapshot_log(tmp_path, [["T-1", "escalated", "2024-05-01T09:00:00", "", "ann", "billing", "app"]])

    (invalid,) = read(path, SNAPSHOT_MAPPING).invalid

    assert "unknown status 'escalated'" in invalid.reason
    assert "status_commands" in invalid.reason


def test_snapshot_repeated_state_issues_nothing(tmp_path: Path) -> None:
    path = snapshot_log(
        tmp_path,
        [
            ["T-1", "new", "2024-05-01T09:00:00", "", "ann", "billing", "app"],
            ["T-1", "new", "2024-05-01T09:30:00", "", "ann", "billing", "app"],
        ],
    )

    (case,) = plan(path, SNAPSHOT_MAPPING)

    assert case.rows[1].actions == ()


# People.


def test_agents_hired_with_department_timeline(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 7", "2012/3/1 10:00:00", section="Value 2"),
            row("Case 1", "Closed", "Value 5", "2012/4/1 10:00:00", section="Value 2"),
            row("Case 2", "Assign seriousness", "Value 7", "2012/1/1 10:00:00", section="Value 1"),
            row("Case 3", "Assign seriousness", "Value 7", "2012/5/1 10:00:00", section="Value 1"),
        ],
    )
    cases = plan(path)

    people = plan_people(cases, MAPPING)

    assert set(people.agents) == {"Value 7"}
    agent = people.agents["Value 7"]
    assert agent.agent_id == keys.agent_id(MAPPING.name, "Value 7")
    assert agent.hired_at == utc(2012, 1, 1, 9)
    assert agent.departments == [(utc(2012, 1, 1, 9), "Value 1"), (utc(2012, 3, 1, 9), "Value 2")]


def test_customers_registered_at_first_ticket(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/3/1 10:00:00", customer="Value 12"),
            row("Case 2", "Assign seriousness", "Value 1", "2012/1/1 10:00:00", customer="Value 12"),
            row("Case 2", "VERIFIED", "Value 1", "2012/1/2 10:00:00", customer="Value 225"),
        ],
    )

    people = plan_people(plan(path), MAPPING)

    assert set(people.customers) == {"Value 12"}
    assert people.customers["Value 12"].registered_at == utc(2012, 1, 1, 9)


# Driving tickets.


def test_ticket_lifecycle_events(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/10/9 14:50:17"),
            row("Case 1", "Take in charge ticket", "Value 2", "2012/10/9 14:51:01"),
            row("Case 1", "Resolve ticket", "Value 2", "2012/10/25 11:54:26"),
            row("Case 1", "Closed", "Value 5", "2012/11/24 11:54:50"),
        ],
    )

    outcome = drive_one(path)
    ticket = outcome.ticket

    assert event_names(ticket) == ["Opened", "Assigned", "AgentReplied", "Resolved", "Closed"]
    opened, assigned, replied, resolved, closed = ticket.pending_events
    assert opened.occurred_at == utc(2012, 10, 9, 12, 50, 17)
    assert opened.customer_id == keys.customer_id(MAPPING.name, "Value 1")
    assert opened.department == "Value 1"
    assert opened.subject == "Case 1"
    assert opened.attributes["seriousness_2"] == "Value 1"
    assert assigned.agent_id == keys.agent_id(MAPPING.name, "Value 2")
    assert assigned.actor_id == f"agent:{keys.agent_id(MAPPING.name, 'Value 2')}"
    assert replied.visibility == ReplyVisibility.PUBLIC
    assert replied.body == "Take in charge ticket"
    assert resolved.resolution == Resolution.SOLVED
    assert closed.actor_id == "system:value-5"
    assert closed.occurred_at == utc(2012, 11, 24, 10, 54, 50)
    assert len({event.command_key for event in ticket.pending_events}) == 5
    # The resume of "Take in charge ticket" was not needed, so it is counted apart.
    assert outcome.commands == 5
    assert outcome.not_needed == {"resume: ticket not pending or on hold": 1}
    assert outcome.quirks == {}


def test_command_keys_deterministic(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/10/9 14:50:17"),
            row("Case 1", "Resolve ticket", "Value 2", "2012/10/25 11:54:26"),
        ],
    )

    first = [event.command_key for event in drive_one(path).ticket.pending_events]
    second = [event.command_key for event in drive_one(path).ticket.pending_events]

    assert first == second
    assert all(key.startswith("import:") for key in first)


def test_activity_after_close_reopens(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 2436", "Assign seriousness", "Value 14", "2013/10/11 07:08:53"),
            row("Case 2436", "Resolve ticket", "Value 1", "2013/10/11 08:03:51"),
            row("Case 2436", "Closed", "Value 3", "2013/10/26 08:04:05"),
            row("Case 2436", "Take in charge ticket", "Value 2", "2013/11/28 11:53:34"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket)[-3:] == ["Closed", "Reopened", "Assigned"]
    reopened = events_of(outcome.ticket, "Reopened")[0]
    assert reopened.occurred_at == utc(2013, 11, 28, 10, 53, 34)
    assert outcome.quirks[Quirk.REOPENED_AFTER_CLOSE] == 1
    assert outcome.quirks[Quirk.NEVER_CLOSED_OPEN] == 1
    assert outcome.ticket.status is TicketStatus.OPEN


def test_activity_after_resolution_reopens(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 1", "2012/1/2 10:00:00"),
            row("Case 1", "Wait", "Value 1", "2012/1/3 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 1", "2012/1/4 10:00:00"),
            row("Case 1", "Closed", "Value 5", "2012/2/4 10:00:00"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket) == [
        "Opened",
        "Assigned",
        "AgentReplied",
        "Resolved",
        "Reopened",
        "MovedToPending",
        "Resolved",
        "Closed",
    ]
    assert outcome.quirks[Quirk.REOPENED_AFTER_RESOLUTION] == 1


def test_second_resolution_not_needed(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1017", "Assign seriousness", "Value 1", "2012/9/1 10:00:00"),
            row("Case 1017", "Resolve ticket", "Value 4", "2012/9/10 10:00:00"),
            row("Case 1017", "Resolve ticket", "Value 4", "2012/9/10 10:05:00"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket).count("Resolved") == 1
    assert outcome.not_needed["resolve: ticket already resolved with that resolution"] == 1
    assert outcome.quirks[Quirk.NEVER_CLOSED_RESOLVED] == 1


def test_other_resolution_reopens_and_resolves(tmp_path: Path) -> None:
    mapping = mapping_variant(activity_commands={"INVALID": [{"resolve": "invalid"}]})
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 2", "2012/1/2 10:00:00"),
            row("Case 1", "INVALID", "Value 2", "2012/1/2 12:00:00"),
        ],
    )

    outcome = drive_one(path, mapping)

    assert event_names(outcome.ticket)[-3:] == ["Resolved", "Reopened", "Resolved"]
    assert outcome.ticket.resolution is Resolution.INVALID
    assert outcome.quirks[Quirk.RESOLUTION_CHANGED] == 1


def test_close_without_resolution_resolves_first(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Wait", "Value 1", "2012/1/2 10:00:00"),
            row("Case 1", "Closed", "Value 5", "2012/2/2 10:00:00"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket)[-2:] == ["Resolved", "Closed"]
    resolved = events_of(outcome.ticket, "Resolved")[0]
    assert resolved.resolution == Resolution.SOLVED
    assert resolved.actor_id == "system:value-5"
    assert outcome.quirks[Quirk.CLOSED_WITHOUT_RESOLUTION] == 1


def test_second_close_not_needed(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 4284", "Assign seriousness", "Value 2", "2010/1/13 12:30:37"),
            row("Case 4284", "Resolve ticket", "Value 2", "2010/1/27 13:31:24"),
            row("Case 4284", "Closed", "Value 5", "2010/2/11 15:59:39"),
            row("Case 4284", "Closed", "Value 16", "2010/3/5 16:01:37"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket).count("Closed") == 1
    assert outcome.not_needed["close: ticket already closed"] == 1


def test_attributes_change_mid_ticket(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Take in charge ticket", "Value 2", "2012/1/2 10:00:00", seriousness_2="Value 3"),
            row("Case 1", "Resolve ticket", "Value 2", "2012/1/3 10:00:00", seriousness_2="Value 3"),
        ],
    )

    outcome = drive_one(path)

    (changed,) = events_of(outcome.ticket, "AttributesChanged")
    assert changed.attributes == {"seriousness_2": "Value 3"}
    assert changed.occurred_at == utc(2012, 1, 2, 9)
    assert outcome.quirks[Quirk.ATTRIBUTES_CHANGED] == 1


def test_attribute_change_on_closed_ticket_skipped(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 2", "2012/1/2 10:00:00"),
            row("Case 1", "Closed", "Value 5", "2012/2/2 10:00:00"),
            row("Case 1", "Closed", "Value 5", "2012/2/3 10:00:00", product="Value 2"),
        ],
    )

    outcome = drive_one(path)

    assert events_of(outcome.ticket, "AttributesChanged") == []
    assert outcome.skipped["change_attributes: ticket is closed"] == 1


def test_attribute_change_applied_after_reopen(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 2", "2012/1/2 10:00:00"),
            row("Case 1", "Closed", "Value 5", "2012/2/2 10:00:00"),
            row("Case 1", "Take in charge ticket", "Value 4", "2012/2/3 10:00:00", product="Value 2"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket)[-4:] == ["Closed", "Reopened", "Assigned", "AttributesChanged"]
    assert outcome.skipped == {}


def test_foreign_customer_changes_nothing(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00", customer="Value 48"),
            row("Case 1", "RESOLVED", "Value 2", "2012/1/2 10:00:00", customer="Value 285", seriousness_2="Value 4"),
            row("Case 1", "Resolve ticket", "Value 2", "2012/1/3 10:00:00", customer="Value 48"),
        ],
    )

    outcome = drive_one(path)

    assert outcome.ticket.customer_id == keys.customer_id(MAPPING.name, "Value 48")
    assert events_of(outcome.ticket, "AttributesChanged") == []
    (note, _reply) = events_of(outcome.ticket, "AgentReplied")
    assert note.visibility == ReplyVisibility.INTERNAL
    assert note.body == "Software anomaly RESOLVED"
    assert outcome.quirks[Quirk.CUSTOMER_CHANGED] == 1
    assert outcome.customer_ids == {keys.customer_id(MAPPING.name, "Value 48")}


def test_never_closed_counted_by_status(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Wait", "Value 1", "2012/1/2 10:00:00"),
            row("Case 2", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 2", "Require upgrade", "Value 1", "2012/1/2 10:00:00"),
        ],
    )

    pending, on_hold = drive(path)[0]

    assert pending.quirks[Quirk.NEVER_CLOSED_PENDING] == 1
    assert on_hold.quirks[Quirk.NEVER_CLOSED_ON_HOLD] == 1


def test_system_users_not_hired(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Insert ticket", "Value 5", "2012/1/1 10:00:00"),
            row("Case 1", "Take in charge ticket", "Value 3", "2012/1/2 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 2", "2012/1/3 10:00:00"),
        ],
    )

    outcomes, directory = drive(path)
    (outcome,) = outcomes

    assert events_of(outcome.ticket, "Opened")[0].actor_id == "system:value-5"
    # The system user's Take in charge assigns no agent. The agent who resolves gets the ticket.
    (assigned,) = events_of(outcome.ticket, "Assigned")
    assert assigned.agent_id == keys.agent_id(MAPPING.name, "Value 2")
    assert outcome.skipped == {"assign: resource is a system user": 1, "first_reply: resource is a system user": 1}
    assert set(directory.people.agents) == {"Value 2"}
    assert outcome.agent_ids == {keys.agent_id(MAPPING.name, "Value 2")}


def test_first_reply_sent_once(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Take in charge ticket", "Value 1", "2012/1/1 11:00:00"),
            row("Case 1", "Wait", "Value 1", "2012/1/2 10:00:00"),
            row("Case 1", "Take in charge ticket", "Value 2", "2012/1/3 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 2", "2012/1/4 10:00:00"),
        ],
    )

    outcome = drive_one(path)

    (reply,) = events_of(outcome.ticket, "AgentReplied")
    assert reply.occurred_at == utc(2012, 1, 1, 10)
    assert event_names(outcome.ticket) == [
        "Opened",
        "Assigned",
        "AgentReplied",
        "MovedToPending",
        "Assigned",
        "Resumed",
        "Resolved",
    ]


def test_note_on_resolved_ticket_skipped(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 1", "2012/1/2 10:00:00"),
            row("Case 1", "VERIFIED", "Value 22", "2012/1/2 11:00:00"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket) == ["Opened", "Assigned", "AgentReplied", "Resolved"]
    assert outcome.skipped == {"note: ticket is resolved": 1}


def test_anomaly_holds_and_resumes(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 836", "Assign seriousness", "Value 4", "2012/2/8 10:00:00"),
            row("Case 836", "Create SW anomaly", "Value 2", "2012/2/16 10:00:00"),
            row("Case 836", "Create SW anomaly", "Value 2", "2012/2/16 10:01:00"),
            row("Case 836", "Resolve SW anomaly", "Value 2", "2012/2/16 12:00:00"),
            row("Case 836", "Resolve SW anomaly", "Value 9", "2012/2/17 12:00:00"),
            row("Case 836", "Wait", "Value 9", "2012/2/18 12:00:00"),
            row("Case 836", "Wait", "Value 9", "2012/2/18 12:05:00"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket) == [
        "Opened",
        "PutOnHold",
        "Resumed",
        "MovedToPending",
        "Assigned",
        "AgentReplied",
    ]
    assert outcome.not_needed == {
        "put_on_hold: ticket already on hold": 1,
        "resume: ticket not pending or on hold": 1,
        "move_to_pending: ticket already pending": 1,
    }


def test_out_of_order_row_rejects_ticket(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/2 10:00:00"),
            row("Case 1", "Take in charge ticket", "Value 1", "2012/1/3 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 1", "2012/1/1 10:00:00"),
        ],
    )

    with pytest.raises(TicketRejected) as caught:
        drive_one(path)

    assert caught.value.line == 4
    assert "line 3" in caught.value.reason
    assert "time order" in caught.value.reason


def test_agent_gets_department_before_assignment(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Take in charge ticket", "Value 9", "2012/1/1 10:00:00", section="Value 1"),
            row("Case 2", "Take in charge ticket", "Value 9", "2012/2/1 10:00:00", section="Value 4"),
        ],
    )

    outcomes, directory = drive(path)

    agent = directory.agent("Value 9")
    assert event_names(agent) == ["Hired", "DepartmentsChanged"]
    hired, changed = agent.pending_events
    assert hired.departments == ["Value 1"]
    assert changed.departments == ["Value 1", "Value 4"]
    assert changed.occurred_at == utc(2012, 2, 1, 9)
    assert hired.employment == "regular"
    assert hired.email == "agent-value-9@example.invalid"
    assert [len(events_of(outcome.ticket, "Assigned")) for outcome in outcomes] == [1, 1]


def test_stored_agent_gets_missing_department_late(tmp_path: Path) -> None:
    agent_id = keys.agent_id(MAPPING.name, "Value 9")
    stored = Agent.hire(
        agent_id, "Value 9", "agent-value-9@example.invalid", "regular", None, ["Value 1"], occurred_at=utc(2013, 1, 1)
    )
    stored.collect_events()
    path = write_log(tmp_path, [row("Case 1", "Take in charge ticket", "Value 9", "2012/1/1 10:00:00", section="Value 2")])

    outcomes, directory = drive(path, store=InMemoryStore(stored))

    (changed,) = events_of(stored, "DepartmentsChanged")
    assert changed.departments == ["Value 1", "Value 2"]
    assert changed.occurred_at == utc(2013, 1, 1)
    assert directory.quirks[Quirk.AGENT_DEPARTMENT_ADDED_LATE] == 1
    assert len(events_of(outcomes[0].ticket, "Assigned")) == 1


def test_stored_customer_reused(tmp_path: Path) -> None:
    customer_id = keys.customer_id(MAPPING.name, "Value 1")
    stored = Customer.register(customer_id, "Someone", "someone@example.com", occurred_at=utc(2011, 1, 1))
    stored.collect_events()
    path = write_log(tmp_path, [row("Case 1", "Insert ticket", "Value 2", "2012/1/1 10:00:00")])

    outcomes, directory = drive(path, store=InMemoryStore(stored))

    assert directory.customer("Value 1") is stored
    assert stored.pending_events == []
    assert outcomes[0].ticket.customer_id == customer_id


def test_priority_rule_sets_and_changes_priority(tmp_path: Path) -> None:
    mapping = mapping_variant(
        priority={"column": "seriousness_2", "values": {"Value 1": "low", "Value 2": "high"}}
    )
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 11:00:00", seriousness_2="Value 2"),
        ],
    )

    outcome = drive_one(path, mapping)

    assert events_of(outcome.ticket, "Opened")[0].priority == Priority.LOW
    assert events_of(outcome.ticket, "PriorityChanged")[0].priority == Priority.HIGH
    assert outcome.quirks[Quirk.PRIORITY_CHANGED] == 1
    assert outcome.quirks[Quirk.ATTRIBUTES_CHANGED] == 1


def test_priority_value_unknown_invalid(tmp_path: Path) -> None:
    mapping = mapping_variant(priority={"column": "seriousness_2", "values": {"Value 1": "low"}})
    path = write_log(tmp_path, [row("Case 1", "Insert ticket", "Value 1", "2012/1/1 10:00:00", seriousness_2="Value 4")])

    (invalid,) = read(path, mapping).invalid

    assert "unknown priority value 'Value 4'" in invalid.reason


# Replaying on a stored ticket.


def stored_copy(outcome: TicketOutcome) -> Ticket:
    """Rebuild the outcome's ticket from its events, as loading it from the store would."""
    ticket = None
    for event in outcome.ticket.collect_events():
        ticket = event.mutate(ticket)
    assert isinstance(ticket, Ticket)
    return ticket


def test_replay_adds_only_new_rows(tmp_path: Path) -> None:
    rows = [
        row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
        row("Case 1", "Take in charge ticket", "Value 1", "2012/1/1 11:00:00"),
        row("Case 1", "Resolve ticket", "Value 1", "2012/1/2 10:00:00"),
        row("Case 1", "Closed", "Value 5", "2012/2/2 10:00:00"),
    ]
    stored = stored_copy(drive_one(write_log(tmp_path, rows[:2], name="first.csv")))
    grown = drive_one(write_log(tmp_path, rows, name="grown.csv"))

    assert not is_fully_applied(grown, stored)
    replay(grown, stored)

    assert event_names(stored) == ["Resolved", "Closed"]
    assert is_fully_applied(grown, stored)


def test_replay_of_same_rows_changes_nothing(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 1", "2012/1/2 10:00:00", seriousness_2="Value 2"),
        ],
    )
    stored = stored_copy(drive_one(path))
    again = drive_one(path)

    assert is_fully_applied(again, stored)
    replay(again, stored)
    assert stored.pending_events == []


def test_replay_rejects_foreign_ticket(tmp_path: Path) -> None:
    path = write_log(tmp_path, [row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00")])
    outcome = drive_one(path)
    other = Ticket.open(
        outcome.ticket.id, outcome.ticket.customer_id, "email", "x", "", occurred_at=utc(2012, 1, 1), command_key="api:1"
    )
    other.collect_events()

    with pytest.raises(TicketRejected, match="already exists"):
        replay(outcome, other)


# Recovery rules.


def test_recovery_rules() -> None:
    closed_assign = recovery_for("assign", TicketStatus.CLOSED)
    assert closed_assign is not None
    assert closed_assign.kind is RecoveryKind.REOPEN_FIRST
    assert closed_assign.quirk is Quirk.REOPENED_AFTER_CLOSE

    open_close = recovery_for("close", TicketStatus.PENDING)
    assert open_close is not None
    assert open_close.kind is RecoveryKind.RESOLVE_FIRST

    note_closed = recovery_for("reply_as_agent", TicketStatus.CLOSED)
    assert note_closed is not None
    assert note_closed.kind is RecoveryKind.SKIP

    same = recovery_for("resolve", TicketStatus.RESOLVED, same_resolution=True)
    assert same is not None
    assert same.kind is RecoveryKind.NOT_NEEDED

    assert recovery_for("assign", TicketStatus.MERGED) is None
    assert recovery_for("change_attributes", TicketStatus.CLOSED) is None
