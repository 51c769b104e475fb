"""`ticketing import` against the real PostgreSQL server, one event-store schema per test.

Small logs written by each test cover storing, re-importing, rejects and exit codes,
and a failure half-way through a ticket. One test imports the first cases of the real
helpdesk log and checks the stored events against figures computed here from the CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from domain.ticket import Ticket
from ticketing.application import HelpdeskApplication
from ticketing.importer import executor, keys
from ticketing.importer.errors import TicketImportError
from ticketing.importer.mapping import default_mapping_path, load_mapping
from ticketing.importer.quirks import Quirk
from ticketing.importer.runner import ImportOptions, ImportRun
from ticketing.importer.summary import ImportSummary
from ticketing.settings import Settings

MAPPING = load_mapping(default_mapping_path())
SOURCE = MAPPING.name
SYSTEM_RESOURCES = {"Value 3", "Value 5"}

# Upper bound of one command-line run, so that a hanging import fails the test.
CLI_TIMEOUT_SECONDS = 300
# Upper bound of notification pages read back, 1,000 events each.
MAX_PAGES = 1_000

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


def row(case: str, activity: str, resource: str, time: str, *, customer: str = "Value 1") -> list[str]:
    return [case, activity, resource, time, "Variant 1", "1", "Variant 1", "Value 1", customer] + ["Value 1"] * 7


def write_log(directory: Path, rows: Sequence[Sequence[str]], name: str = "log.csv") -> Path:
    path = directory / name
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


THREE_CASES = [
    row("Case 1", "Assign seriousness", "Value 1", "2012/10/9 14:50:17"),
    row("Case 1", "Take in charge ticket", "Value 2", "2012/10/9 14:51:01"),
    row("Case 1", "Resolve ticket", "Value 2", "2012/10/25 11:54:26"),
    row("Case 1", "Closed", "Value 5", "2012/11/24 11:54:50"),
    row("Case 2", "Insert ticket", "Value 5", "2012/10/10 09:00:00", customer="Value 2"),
    row("Case 2", "Take in charge ticket", "Value 1", "2012/10/10 10:00:00", customer="Value 2"),
    row("Case 2", "Wait", "Value 1", "2012/10/11 10:00:00", customer="Value 2"),
    row("Case 3", "Take in charge ticket", "Value 2", "2012/10/12 08:00:00"),
    row("Case 3", "Resolve ticket", "Value 2", "2012/10/12 09:00:00"),
]


@pytest.fixture
def store_settings(base_settings: Settings, database_url: str, pg_schema: str) -> Settings:
    """Settings whose event store is this test's own schema. Needs only PostgreSQL."""
    return dataclasses.replace(base_settings, event_store_schema=pg_schema)


@pytest.fixture
def make_app(store_settings: Settings) -> Iterator[Callable[[], HelpdeskApplication]]:
    apps: list[HelpdeskApplication] = []

    def make() -> HelpdeskApplication:
        app = HelpdeskApplication(env=store_settings.eventsourcing_env())
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def import_file(app: HelpdeskApplication, path: Path, **options: Any) -> ImportSummary:
    return ImportRun(app, MAPPING, path, ImportOptions(**options)).run()


def stored_events(app: HelpdeskApplication) -> list[Any]:
    """Read every stored event back through the notification log, in storage order."""
    events: list[Any] = []
    start = 1
    for _ in range(MAX_PAGES):
        page = app.recorder.select_notifications(start=start, limit=1_000)
        if not page:
            return events
        events.extend(app.mapper.to_domain_event(notification) for notification in page)
        start = page[-1].id + 1
    raise AssertionError(f"more than {MAX_PAGES} pages of events; raise MAX_PAGES")


def event_type(event: Any) -> str:
    return type(event).__qualname__


def types_of(events: list[Any], aggregate_id: UUID | None = None) -> list[str]:
    return [event_type(event) for event in events if aggregate_id is None or event.originator_id == aggregate_id]


def run_cli(settings: Settings, output_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name("ticketing")
    environment = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": settings.database_url,
        "EVENT_STORE_SCHEMA": settings.event_store_schema,
        "OUTPUT_DIR": str(output_dir),
    }
    return subprocess.run(
        [str(executable), "--log-level", "WARNING", "import", *args, "--no-progress"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def ticket_id(case: str) -> UUID:
    return keys.ticket_id(SOURCE, case)


# Storing.


def test_small_log_stored(make_app: Callable[[], HelpdeskApplication], tmp_path: Path) -> None:
    summary = import_file(make_app(), write_log(tmp_path, THREE_CASES))

    # A second application instance reads only what was committed.
    events = stored_events(make_app())

    assert summary.tickets_new == 3
    assert summary.events_stored_total == len(events)
    assert types_of(events, ticket_id("Case 1")) == [
        "Ticket.Opened",
        "Ticket.Assigned",
        "Ticket.AgentReplied",
        "Ticket.Resolved",
        "Ticket.Closed",
    ]
    assert types_of(events, ticket_id("Case 2")) == [
        "Ticket.Opened",
        "Ticket.Assigned",
        "Ticket.AgentReplied",
        "Ticket.MovedToPending",
    ]
    assert Counter(types_of(events))["Agent.Hired"] == 2
    assert Counter(types_of(events))["Customer.Registered"] == 2

    closed = [event for event in events if event_type(event) == "Ticket.Closed"][0]
    assert closed.occurred_at == datetime(2012, 11, 24, 10, 54, 50, tzinfo=timezone.utc)
    assert closed.actor_id == "system:value-5"
    assert closed.command_key.startswith("import:")


def test_people_stored_before_their_tickets(make_app: Callable[[], HelpdeskApplication], tmp_path: Path) -> None:
    import_file(make_app(), write_log(tmp_path, THREE_CASES), batch_size=1)

    events = stored_events(make_app())
    position = {(event.originator_id, event.originator_version): index for index, event in enumerate(events)}
    first_version = 1

    references = [
        (event, event.agent_id) for event in events if event_type(event) == "Ticket.Assigned"
    ] + [(event, event.customer_id) for event in events if event_type(event) == "Ticket.Opened"]
    assert len(references) == 6
    for event, person_id in references:
        assert position[(person_id, first_version)] < position[(event.originator_id, event.originator_version)]


def test_second_import_stores_nothing(make_app: Callable[[], HelpdeskApplication], tmp_path: Path) -> None:
    path = write_log(tmp_path, THREE_CASES)
    first = import_file(make_app(), path)
    count_after_first = len(stored_events(make_app()))

    second = import_file(make_app(), path)

    assert first.events_stored_total == count_after_first
    assert second.events_stored_total == 0
    assert second.transactions == 0
    assert second.tickets_unchanged == 3
    assert second.tickets_new == 0
    assert len(stored_events(make_app())) == count_after_first
    assert second.rows_applied == 0
    assert second.rows_already_applied == first.rows_applied == len(THREE_CASES)
    assert second.commands_issued == 0
    assert second.commands_already_applied == first.commands_issued


def test_same_rows_in_other_file_store_nothing(make_app: Callable[[], HelpdeskApplication], tmp_path: Path) -> None:
    import_file(make_app(), write_log(tmp_path, THREE_CASES, name="export-1.csv"))
    reordered = THREE_CASES[4:7] + THREE_CASES[:4] + THREE_CASES[7:]

    again = import_file(make_app(), write_log(tmp_path, reordered, name="export-2.csv"))

    assert again.events_stored_total == 0


def test_grown_log_extends_ticket(make_app: Callable[[], HelpdeskApplication], tmp_path: Path) -> None:
    import_file(make_app(), write_log(tmp_path, THREE_CASES[:2], name="monday.csv"))

    grown = import_file(make_app(), write_log(tmp_path, THREE_CASES, name="tuesday.csv"))

    events = stored_events(make_app())
    assert grown.tickets_extended == 1
    assert grown.tickets_new == 2
    # Case 1 had two of its four rows stored; cases 2 and 3 are new.
    assert grown.rows_already_applied == 2
    assert grown.rows_applied == len(THREE_CASES) - 2
    assert types_of(events, ticket_id("Case 1")) == [
        "Ticket.Opened",
        "Ticket.Assigned",
        "Ticket.AgentReplied",
        "Ticket.Resolved",
        "Ticket.Closed",
    ]


# Case 4 is resolved by an agent, Value 2, that never took it in charge.
UNASSIGNED_CASE = [
    row("Case 4", "Assign seriousness", "Value 1", "2012/10/13 08:00:00"),
    row("Case 4", "Resolve ticket", "Value 2", "2012/10/13 09:00:00"),
    row("Case 4", "Closed", "Value 5", "2012/11/13 09:00:00"),
]


def test_resolving_agent_assigned(make_app: Callable[[], HelpdeskApplication], tmp_path: Path) -> None:
    summary = import_file(make_app(), write_log(tmp_path, UNASSIGNED_CASE))

    events = stored_events(make_app())
    assert types_of(events, ticket_id("Case 4")) == [
        "Ticket.Opened",
        "Ticket.Assigned",
        "Ticket.AgentReplied",
        "Ticket.Resolved",
        "Ticket.Closed",
    ]
    (assigned,) = [event for event in events if event_type(event) == "Ticket.Assigned"]
    assert assigned.agent_id == keys.agent_id(SOURCE, "Value 2")
    assert summary.quirks[Quirk.IMPLICIT_ASSIGN] == 1


def test_store_without_implicit_assignments_kept(
    make_app: Callable[[], HelpdeskApplication], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_log(tmp_path, [*THREE_CASES, *UNASSIGNED_CASE])
    with monkeypatch.context() as patch:
        # The importer as it was before implicit assignments.
        patch.setattr(executor._CaseDriver, "_assign_if_unassigned", lambda self, agent, context: None)
        earlier = import_file(make_app(), path)
    count_after_first = len(stored_events(make_app()))

    again = import_file(make_app(), path)

    assert earlier.quirks[Quirk.IMPLICIT_ASSIGN] == 0
    assert again.tickets_unchanged == 4
    assert again.tickets_rejected == 0
    assert again.events_stored_total == 0
    assert again.quirks[Quirk.IMPLICIT_ASSIGN] == 0
    left_out = "assign to the replying or resolving agent: ticket stored before by an import without it"
    assert again.commands_skipped[left_out] == 1
    assert again.commands_issued == 0
    assert again.commands_already_applied == earlier.commands_issued
    assert len(stored_events(make_app())) == count_after_first


# Failures.


def case_b_fails(tmp_path: Path) -> Path:
    """Write cases A, B and C, where B's third row is earlier than its second."""
    return write_log(
        tmp_path,
        [
            row("A", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("A", "Resolve ticket", "Value 1", "2012/1/2 10:00:00"),
            row("B", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("B", "Take in charge ticket", "Value 2", "2012/1/5 10:00:00"),
            row("B", "Resolve ticket", "Value 2", "2012/1/3 10:00:00"),
            row("B", "Closed", "Value 5", "2012/2/3 10:00:00"),
            row("C", "Assign seriousness", "Value 1", "2012/1/1 10:00:00", customer="Value 3"),
        ],
    )


def test_mid_ticket_failure_stores_nothing_of_it(make_app: Callable[[], HelpdeskApplication], tmp_path: Path) -> None:
    run = ImportRun(make_app(), MAPPING, case_b_fails(tmp_path))

    with pytest.raises(TicketImportError) as caught:
        run.run()

    events = stored_events(make_app())
    assert caught.value.case == "B"
    assert caught.value.line == 6
    # Value 1 resolves the unassigned ticket A, so the importer assigns it to Value 1 first.
    assert types_of(events, ticket_id("A")) == [
        "Ticket.Opened",
        "Ticket.Assigned",
        "Ticket.AgentReplied",
        "Ticket.Resolved",
    ]
    assert types_of(events, ticket_id("B")) == []
    assert types_of(events, ticket_id("C")) == []
    # Value 2 appears only in case B, so the agent was not stored either.
    assert keys.agent_id(SOURCE, "Value 2") not in {event.originator_id for event in events}
    assert run.summary.tickets_new == 1
    assert run.summary.tickets_rejected == 1


def test_rejected_ticket_skipped_with_rejects(make_app: Callable[[], HelpdeskApplication], tmp_path: Path) -> None:
    rejects_path = tmp_path / "rejects.csv"

    summary = import_file(make_app(), case_b_fails(tmp_path), skip_invalid=True, rejects_path=rejects_path)

    events = stored_events(make_app())
    assert types_of(events, ticket_id("B")) == []
    assert types_of(events, ticket_id("C")) == ["Ticket.Opened"]
    assert summary.tickets_rejected == 1
    assert summary.rows_skipped["row of a ticket the domain rejected (--skip-invalid)"] == 4
    with rejects_path.open(encoding="utf-8", newline="") as handle:
        rejected = list(csv.DictReader(handle))
    assert [entry["line"] for entry in rejected] == ["4", "5", "6", "7"]
    assert all("time order" in entry["reason"] for entry in rejected)
    assert rejected[0]["Activity"] == "Assign seriousness"


def test_ticket_stored_by_others_not_touched(make_app: Callable[[], HelpdeskApplication], tmp_path: Path) -> None:
    app = make_app()
    app.open_ticket(
        ticket_id("Case 3"),
        keys.customer_id(SOURCE, "Value 1"),
        "email",
        "Value 1",
        "Opened through the API",
        occurred_at=datetime(2012, 10, 1, tzinfo=timezone.utc),
        command_key="api:1",
    )

    summary = import_file(app, write_log(tmp_path, THREE_CASES), skip_invalid=True, rejects_path=tmp_path / "r.csv")

    stored = make_app().get_ticket(ticket_id("Case 3"))
    assert isinstance(stored, Ticket)
    assert stored.version == 1
    assert summary.tickets_rejected == 1
    assert summary.tickets_new == 2


# The command line.


MALFORMED = [
    row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
    row("Case 1", "Resolve ticket", "Value 1", "2012/1/2 10:00:00")[:12],
    row("Case 2", "Assign seriousness", "Value 1", "2012/13/45 10:00:00"),
    row("Case 3", "Escalate", "Value 1", "2012/1/1 10:00:00"),
    row("Case 4", "Insert ticket", "Value 1", "2012/1/1 10:00:00"),
]


def test_cli_malformed_row_stops(store_settings: Settings, make_app: Callable[[], HelpdeskApplication], tmp_path: Path) -> None:
    path = write_log(tmp_path, MALFORMED)

    result = run_cli(store_settings, tmp_path, str(path))

    assert result.returncode == 1
    assert f"{path} line 3: short row: 12 fields" in result.stderr
    assert "2 more malformed rows follow" in result.stderr
    assert "--skip-invalid" in result.stderr
    assert stored_events(make_app()) == []


def test_cli_bad_time_named(store_settings: Settings, tmp_path: Path) -> None:
    path = write_log(tmp_path, [MALFORMED[2]])

    result = run_cli(store_settings, tmp_path, str(path))

    assert result.returncode == 1
    assert "line 2: invalid timestamp '2012/13/45 10:00:00'" in result.stderr


def test_cli_skip_invalid_writes_rejects(
    store_settings: Settings, make_app: Callable[[], HelpdeskApplication], tmp_path: Path
) -> None:
    path = write_log(tmp_path, MALFORMED)
    rejects_path = tmp_path / "out" / "rejects.csv"
    rejects_path.parent.mkdir()

    result = run_cli(store_settings, tmp_path, str(path), "--skip-invalid", "--rejects", str(rejects_path))

    assert result.returncode == 0, result.stderr
    with rejects_path.open(encoding="utf-8", newline="") as handle:
        rejected = list(csv.reader(handle))
    assert rejected[0][:3] == ["line", "reason", "Case ID"]
    assert [entry[0] for entry in rejected[1:]] == ["3", "4", "5"]
    assert rejected[1][1] == "short row: 12 fields, but the header has 16"
    assert "invalid timestamp" in rejected[2][1]
    assert "unknown activity 'Escalate'" in rejected[3][1]
    assert "malformed row (--skip-invalid)" in result.stdout
    events = stored_events(make_app())
    assert types_of(events, ticket_id("Case 1")) == ["Ticket.Opened"]
    assert types_of(events, ticket_id("Case 4")) == ["Ticket.Opened"]


def schema_exists(settings: Settings) -> bool:
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (settings.event_store_schema,)
        ).fetchone()
    return row is not None and row[0] == 1


@pytest.mark.parametrize(
    ("rejects", "expected"),
    [
        pytest.param("{tmp}", "the rejects file {tmp} is a folder", id="folder"),
        pytest.param("/proc/x.csv", "the rejects file /proc/x.csv cannot be written", id="not-creatable"),
        pytest.param("{tmp}/missing/dir/r.csv", "the folder of the rejects file {tmp}/missing/dir/r.csv does not exist", id="missing-folder"),
    ],
)
def test_cli_unusable_rejects_path_exit_2(store_settings: Settings, tmp_path: Path, rejects: str, expected: str) -> None:
    path = write_log(tmp_path, MALFORMED)

    result = run_cli(store_settings, tmp_path, str(path), "--skip-invalid", "--rejects", rejects.format(tmp=tmp_path))

    assert result.returncode == 2, result.stderr
    assert f"error: --rejects: {expected.format(tmp=tmp_path)}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "missing").exists()
    assert not schema_exists(store_settings), "nothing may be stored before the rejects path is checked"


def test_cli_default_rejects_path(store_settings: Settings, tmp_path: Path) -> None:
    path = write_log(tmp_path, MALFORMED, name="week.csv")

    result = run_cli(store_settings, tmp_path / "output", str(path), "--skip-invalid")

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "output" / "week-rejects.csv").is_file()


def test_cli_missing_column_exit_2(store_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("id,what,when\n1,x,2012/1/1 10:00:00\n", encoding="utf-8")

    result = run_cli(store_settings, tmp_path, str(path))

    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "column 'Case ID'" in result.stderr
    assert "--mapping" in result.stderr


def test_cli_invalid_mapping_exit_2(store_settings: Settings, tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "name: x\ncolumns: {department: team}\ntimestamp: {format: '%Y', timezone: UTC}\nactivity_commands: {A: [open]}\n",
        encoding="utf-8",
    )

    result = run_cli(store_settings, tmp_path, str(write_log(tmp_path, THREE_CASES)), "--mapping", str(mapping))

    assert result.returncode == 2
    assert f"{mapping}: columns.case: is missing" in result.stderr


def test_cli_invalid_mapping_yaml_names_file_and_line(store_settings: Settings, tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("name: x\ncolumns: {case: Case ID\n", encoding="utf-8")

    result = run_cli(store_settings, tmp_path, str(write_log(tmp_path, THREE_CASES)), "--mapping", str(mapping))

    assert result.returncode == 2
    assert f"error: {mapping}: invalid YAML at line 3, column 1: " in result.stderr
    assert "<unicode string>" not in result.stderr


def test_cli_undecodable_line_named(
    store_settings: Settings, make_app: Callable[[], HelpdeskApplication], tmp_path: Path
) -> None:
    rows = [row(f"Case {number}", "Assign seriousness", "Value 1", "2012/1/1 10:00:00") for number in range(1, 150)]
    path = write_log(tmp_path, rows)
    lines = path.read_bytes().split(b"\n")
    lines[99] = lines[99].replace(b"Variant 1", "Variante \xe8".encode("latin-1"), 1)
    path.write_bytes(b"\n".join(lines))

    result = run_cli(store_settings, tmp_path, str(path))

    assert result.returncode == 2
    assert f"error: {path} line 100: the file is not valid utf-8-sig" in result.stderr
    assert "Re-encode the file as UTF-8" in result.stderr
    assert stored_events(make_app()) == []


def test_cli_rejected_ticket_counted(store_settings: Settings, tmp_path: Path) -> None:
    result = run_cli(store_settings, tmp_path, str(case_b_fails(tmp_path)))

    assert result.returncode == 1
    assert "case 'B' was not imported" in result.stderr
    assert "Rows of a case must be in time order, so correct the time" in result.stderr
    assert "--skip-invalid" in result.stderr
    assert summary_value(result.stdout, "tickets rejected") == "1"


def test_cli_reimport_reports_already_applied(store_settings: Settings, tmp_path: Path) -> None:
    path = write_log(tmp_path, THREE_CASES)
    first = run_cli(store_settings, tmp_path, str(path))

    second = run_cli(store_settings, tmp_path, str(path))

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    issued = summary_value(first.stdout, "commands issued")
    assert summary_value(second.stdout, "commands issued") == "0"
    assert summary_value(second.stdout, "commands already applied") == issued
    assert summary_value(second.stdout, "rows applied") == "0"
    assert summary_value(second.stdout, "rows already imported") == str(len(THREE_CASES))
    assert summary_value(second.stdout, "events stored") == "0"


def summary_value(output: str, name: str) -> str:
    """Return the value of one row of the printed totals table."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) == 2 and cells[0] == name:
            return cells[1]
    raise AssertionError(f"no row {name!r} in the summary:\n{output}")


def test_cli_rejects_needs_skip_invalid(store_settings: Settings, tmp_path: Path) -> None:
    result = run_cli(store_settings, tmp_path, str(write_log(tmp_path, THREE_CASES)), "--rejects", "r.csv")

    assert result.returncode == 2
    assert "--rejects needs --skip-invalid" in result.stderr


def test_cli_prints_summary(store_settings: Settings, tmp_path: Path) -> None:
    result = run_cli(store_settings, tmp_path, str(write_log(tmp_path, THREE_CASES)))

    assert result.returncode == 0, result.stderr
    assert "rows read" in result.stdout
    assert "events stored" in result.stdout
    assert "implicit_open" in result.stdout  # case 3 starts with "Take in charge ticket"


# The real helpdesk log.


@dataclasses.dataclass
class Figures:
    tickets: int
    agents: dict[str, int]  # agent value -> events of the Agent aggregate
    customers: set[str]
    assignments: Counter[str]  # agent value -> Ticket.Assigned events


def figures_from_csv(path: Path, limit_cases: int | None = None) -> Figures:
    """Compute what the import must store, from the CSV with the csv module only."""
    with path.open(encoding="utf-8", newline="") as handle:
        records = list(csv.reader(handle))[1:]
    cases: dict[str, list[list[str]]] = {}
    for record in records:
        cases.setdefault(record[0], []).append(record)
    selected = list(cases)[:limit_cases]

    departments: dict[str, set[str]] = defaultdict(set)
    assignments: Counter[str] = Counter()
    for case in selected:
        rows = list(dict.fromkeys(tuple(record) for record in cases[case]))  # exact duplicates dropped
        department = rows[0][10]
        # The figures below rely on this, so a different log fails here, not later.
        assert {record[10] for record in rows} == {department}, case
        for record in rows:
            if record[2] not in SYSTEM_RESOURCES:
                departments[record[2]].add(department)
        assignments.update(agent for agent, _ in case_assignments(rows))

    return Figures(
        tickets=len(selected),
        # Hired with the first department, one DepartmentsChanged per further department.
        agents={agent: len(names) for agent, names in departments.items()},
        customers={cases[case][0][8] for case in selected},
        assignments=assignments,
    )


# Activities whose first command (move_to_pending, put_on_hold) reopens a resolved or
# closed ticket, also when the row's resource is a system user.
REOPENING_ACTIVITIES = frozenset({"Wait", "Require upgrade", "Create SW anomaly"})


def case_assignments(rows: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """Return the agent and activity of each Ticket.Assigned event of a case, in order, under the rules of docs/import.md.

    An agent's Take in charge reopens a finished ticket and assigns it, unless it is
    assigned to that agent already. An agent's Wait or Resolve ticket assigns an
    unassigned ticket to that agent, because both send the first public reply or
    resolve. The one exception is a Resolve ticket on a resolved ticket, which skips
    the reply and needs no resolution. Nothing in this log clears an assignee, because
    no case changes its department.
    """
    status = "active"
    assignee: str | None = None
    agents: list[tuple[str, str]] = []
    for record in rows:
        activity, resource = record[1], record[2]
        by_agent = bool(resource) and resource not in SYSTEM_RESOURCES
        assigns = False
        if activity == "Take in charge ticket" and by_agent:
            status = "active"
            assigns = resource != assignee
        elif activity in REOPENING_ACTIVITIES:
            status = "active"
            assigns = activity == "Wait" and by_agent and assignee is None
        elif activity == "Resolve ticket":
            assigns = by_agent and assignee is None and status != "resolved"
            status = "resolved"
        elif activity == "Closed":
            status = "closed"
        if assigns:
            agents.append((resource, activity))
            assignee = resource
    return agents


def check_against_figures(events: list[Any], figures: Figures) -> None:
    by_aggregate: Counter[UUID] = Counter(event.originator_id for event in events)
    types = Counter(types_of(events))

    assert types["Ticket.Opened"] == figures.tickets
    assert types["Agent.Hired"] == len(figures.agents)
    assert types["Customer.Registered"] == len(figures.customers)
    for agent, expected in figures.agents.items():
        assert by_aggregate[keys.agent_id(SOURCE, agent)] == expected, agent
    for customer in figures.customers:
        assert by_aggregate[keys.customer_id(SOURCE, customer)] == 1, customer

    assigned = Counter(event.agent_id for event in events if event_type(event) == "Ticket.Assigned")
    assert assigned == Counter({keys.agent_id(SOURCE, agent): count for agent, count in figures.assignments.items()})


def test_real_log_first_cases(
    make_app: Callable[[], HelpdeskApplication], helpdesk_csv: Path, tmp_path: Path
) -> None:
    summary = import_file(make_app(), helpdesk_csv, limit_cases=300)

    events = stored_events(make_app())
    check_against_figures(events, figures_from_csv(helpdesk_csv, limit_cases=300))
    assert summary.rows_read == 21_348
    assert summary.cases == 300
    assert summary.tickets_new == 300
    assert summary.events_stored_total == len(events)
