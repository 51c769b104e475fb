"""`ticketing pipeline` on the real helpdesk log, run twice, against figures computed here from the CSV.

The slowest test of the suite. The first run imports 21,348 rows, relays them to Kafka,
runs the three consumer groups and verifies three replays: 155 s measured on 2 cores
(AMD EPYC, 23 GB) with Kafka and PostgreSQL on the same machine. The second run on the
same configuration must store nothing new and write the same CSV files. It leaves out
the replay verification (`--no-verify`), which the first run did on the same tables,
and took 14 s.

Every expected figure is computed with the csv module from the log, not through the
importer. Where the importer's documented rules (docs/import.md) change a figure, the
computation here applies the same rule and a comment names it.
"""

from __future__ import annotations

import csv
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from kafka import KafkaAdminClient
from psycopg import sql

from tests.conftest import REPOSITORY

# Upper bounds of one pipeline run, so that a hanging stage fails the test.
FIRST_RUN_TIMEOUT_SECONDS = 900
SECOND_RUN_TIMEOUT_SECONDS = 300

# From the shipped mapping (ticketing/importer/mappings/helpdesk.yaml): the log's times
# are wall-clock times in this zone, and these resources are system users, not agents.
LOG_ZONE = ZoneInfo("Europe/Rome")
SYSTEM_USERS = frozenset({"Value 3", "Value 5"})

CASE, ACTIVITY, RESOURCE, TIMESTAMP, CUSTOMER, DEPARTMENT = 0, 1, 2, 3, 8, 10
# Activities whose first command moves a finished ticket back to work: the recovery
# rules reopen a resolved or closed ticket before move_to_pending or put_on_hold.
REOPENING_ACTIVITIES = frozenset({"Wait", "Require upgrade", "Create SW anomaly"})
# Activities whose commands include the first public reply.
REPLY_ACTIVITIES = frozenset({"Take in charge ticket", "Wait", "Resolve ticket"})

CSV_FILES = (
    "departments.csv",
    "departments-all.csv",
    "agents.csv",
    "agents-all.csv",
    "channels.csv",
    "channels-all.csv",
    "customer-cohorts.csv",
    "agent-cohorts.csv",
    "customer-retention.csv",
    "agent-turnover.csv",
)
PNG_FILES = ("customer-cohorts.png", "agent-cohorts.png")
STAGES = ("import", "relay", "consume", "reports", "heatmaps", "replay --verify")
GROUPS = ("reports", "retention", "notifications")


# ---------------------------------------------------------------------------
# Figures from the CSV


@dataclass
class CaseOutcome:
    """What one case of the log becomes under the importer's documented rules."""

    department: str
    customer: str
    opened_at: datetime
    resolutions: int = 0
    resolved_at: datetime | None = None
    assignments: list[str] = field(default_factory=list)
    first_responder: str | None = None


@dataclass
class LogFigures:
    tickets_per_department: Counter[str]
    customers_per_first_year: Counter[int]
    resolution_events: int
    resolved_tickets: int
    median_resolution_seconds: dict[str, float]
    agents: set[str]
    assignments_per_agent: Counter[str]
    first_responses_per_agent: Counter[str]


def log_time(text: str) -> datetime:
    wall_clock = datetime.strptime(text, "%Y/%m/%d %H:%M:%S").replace(tzinfo=LOG_ZONE)
    return wall_clock.astimezone(timezone.utc)


def read_cases(path: Path) -> dict[str, list[list[str]]]:
    """Return each case's rows in file order, without exact duplicates (the importer skips them)."""
    with path.open(encoding="utf-8", newline="") as handle:
        records = list(csv.reader(handle))[1:]
    cases: dict[str, list[list[str]]] = defaultdict(list)
    for record in records:
        cases[record[CASE]].append(record)
    return {case: [list(row) for row in dict.fromkeys(tuple(row) for row in rows)] for case, rows in cases.items()}


def follow_case(rows: list[list[str]]) -> CaseOutcome:
    """Follow a case's rows through the states that the importer's recovery rules give the ticket.

    The ticket opens at the case's first row, with that row's department and customer.
    A Resolve ticket row resolves an open ticket and reopens and resolves a closed one,
    but changes nothing on a resolved one (same resolution), so the resolution time is
    that of the first Resolve ticket after the last reopen. A Closed row on an unresolved
    ticket resolves it first. An agent taking the ticket in charge, a Wait, a Require
    upgrade or a Create SW anomaly reopens a finished ticket, which clears its
    resolution. A system user's Take in charge assigns no agent, assigning the
    current assignee again stores nothing, and an agent's Wait or Resolve ticket on an
    unassigned ticket assigns it to that agent.
    """
    first = rows[0]
    outcome = CaseOutcome(department=first[DEPARTMENT], customer=first[CUSTOMER], opened_at=log_time(first[TIMESTAMP]))
    status = "open"
    assignee = None
    for row in rows:
        activity, resource, at = row[ACTIVITY], row[RESOURCE], log_time(row[TIMESTAMP])
        by_agent = resource not in SYSTEM_USERS

        # The first public reply precedes the other commands of Resolve ticket, so a
        # resolved or closed ticket skips it. The other reply activities reopen first.
        reply_skipped = activity == "Resolve ticket" and status != "open"
        if activity in REPLY_ACTIVITIES and by_agent and outcome.first_responder is None and not reply_skipped:
            outcome.first_responder = resource

        # An agent who asks the customer to wait, or resolves, an unassigned ticket
        # is assigned to it first, unless the Resolve finds the ticket resolved already.
        implicit_assignment = assignee is None and by_agent and (
            activity == "Wait" or (activity == "Resolve ticket" and status != "resolved")
        )
        if implicit_assignment:
            assignee = resource
            outcome.assignments.append(resource)

        if activity == "Resolve ticket" and status != "resolved":
            status, outcome.resolved_at = "resolved", at
            outcome.resolutions += 1
        elif activity == "Closed":
            if status == "open":
                outcome.resolved_at = at
                outcome.resolutions += 1
            status = "closed"
        elif status != "open" and (activity in REOPENING_ACTIVITIES or (activity == "Take in charge ticket" and by_agent)):
            status, outcome.resolved_at = "open", None

        if activity == "Take in charge ticket" and by_agent and resource != assignee:
            assignee = resource
            outcome.assignments.append(resource)
    return outcome


def log_figures(path: Path) -> LogFigures:
    cases = read_cases(path)
    outcomes = [follow_case(rows) for rows in cases.values()]

    first_ticket: dict[str, datetime] = {}
    for outcome in outcomes:
        if outcome.customer not in first_ticket or outcome.opened_at < first_ticket[outcome.customer]:
            first_ticket[outcome.customer] = outcome.opened_at

    resolution_seconds: dict[str, list[float]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.resolved_at is not None:
            resolution_seconds[outcome.department].append((outcome.resolved_at - outcome.opened_at).total_seconds())

    return LogFigures(
        tickets_per_department=Counter(outcome.department for outcome in outcomes),
        # Cohorts are UTC years of the first ticket, as the reports count them.
        customers_per_first_year=Counter(opened_at.year for opened_at in first_ticket.values()),
        resolution_events=sum(outcome.resolutions for outcome in outcomes),
        resolved_tickets=sum(outcome.resolved_at is not None for outcome in outcomes),
        median_resolution_seconds={
            department: statistics.median(seconds) for department, seconds in resolution_seconds.items()
        },
        agents={row[RESOURCE] for rows in cases.values() for row in rows} - SYSTEM_USERS,
        assignments_per_agent=Counter(agent for outcome in outcomes for agent in outcome.assignments),
        first_responses_per_agent=Counter(outcome.first_responder for outcome in outcomes if outcome.first_responder),
    )


# ---------------------------------------------------------------------------
# Two pipeline runs with an isolated configuration


@dataclass
class PipelineRun:
    output: str
    seconds: float
    output_dir: Path
    stored_events: int


@dataclass
class PipelineRuns:
    first: PipelineRun
    second: PipelineRun
    database_url: str
    event_store_schema: str
    projection_prefix: str


def run_pipeline(env: dict[str, str], log_file: Path, timeout: float, *options: str) -> tuple[str, float]:
    """Run `ticketing pipeline` in its own process group and return its standard output and wall time."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "ticketing", "--log-level", "WARNING", "pipeline", str(log_file), *options],
        cwd=REPOSITORY,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # The pipeline starts child processes. In a new session they share a process
        # group whose id is the pid of the process started here, so a timeout stops all.
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        pytest.fail(f"the pipeline timed out after {timeout:g} s. Its last output:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    assert process.returncode == 0, f"the pipeline failed with exit code {process.returncode}:\n{stdout[-3000:]}\n{stderr[-5000:]}"
    return stdout, time.monotonic() - started


def count_stored_events(database_url: str, schema: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.helpdesk_events").format(sql.Identifier(schema))).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, kafka_bootstrap: str, helpdesk_csv: Path
) -> Iterator[PipelineRuns]:
    """Run the pipeline twice on a configuration of its own, then drop its schemas and topics."""
    name = f"pipe_{uuid.uuid4().hex[:10]}"
    folder = tmp_path_factory.mktemp("pipeline")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "EVENT_STORE_SCHEMA": f"{name}_events",
        "TOPIC_PREFIX": f"{name}.",
        "PROJECTION_PREFIX": f"{name}_",
    }
    try:
        runs = []
        for number, timeout, options in ((1, FIRST_RUN_TIMEOUT_SECONDS, ()), (2, SECOND_RUN_TIMEOUT_SECONDS, ("--no-verify",))):
            output_dir = folder / f"run{number}"
            output, seconds = run_pipeline({**env, "OUTPUT_DIR": str(output_dir)}, helpdesk_csv, timeout, *options)
            runs.append(PipelineRun(output, seconds, output_dir, count_stored_events(database_url, f"{name}_events")))
            print(f"pipeline run {number}: {seconds:.1f} s")
        yield PipelineRuns(runs[0], runs[1], database_url, f"{name}_events", f"{name}_")
    finally:
        _drop_schemas(database_url, f"{name}_")
        _delete_topics(kafka_bootstrap, f"{name}.")


def _drop_schemas(database_url: str, prefix: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        schemas = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (prefix,)).fetchall()
        for (schema,) in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        mine = [topic for topic in admin.list_topics() if topic.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


@pytest.fixture(scope="module")
def figures(helpdesk_csv: Path) -> LogFigures:
    return log_figures(helpdesk_csv)


def query(runs: PipelineRuns, group: str, statement: str) -> list[tuple]:
    """Run `statement` with {schema} replaced by the group's projection schema."""
    with psycopg.connect(runs.database_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        schema = sql.Identifier(f"{runs.projection_prefix}{group}")
        return conn.execute(sql.SQL(statement).format(schema=schema)).fetchall()


def read_report(run: PipelineRun, file_name: str) -> list[dict[str, str]]:
    with (run.output_dir / file_name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------
# Checks


def test_tickets_per_department(runs: PipelineRuns, figures: LogFigures) -> None:
    stored = dict(query(runs, "reports", "SELECT department, count(*) FROM {schema}.tickets GROUP BY department"))
    reported = {row["department"]: int(row["opened"]) for row in read_report(runs.first, "departments-all.csv")}

    assert stored == dict(figures.tickets_per_department)
    assert reported == dict(figures.tickets_per_department)


def test_customers_per_first_year(runs: PipelineRuns, figures: LogFigures) -> None:
    stored = query(
        runs,
        "retention",
        "SELECT extract(year FROM first_opened_at AT TIME ZONE 'UTC')::int, count(*) "
        "FROM {schema}.customer_first_tickets GROUP BY 1",
    )

    assert dict(stored) == dict(figures.customers_per_first_year)


def test_resolved_tickets(runs: PipelineRuns, figures: LogFigures) -> None:
    (events,) = query(runs, "retention", "SELECT count(*) FROM {schema}.ticket_resolutions")[0]
    (tickets,) = query(runs, "reports", "SELECT count(*) FROM {schema}.tickets WHERE resolved_at IS NOT NULL")[0]
    reported = read_report(runs.first, "departments-all.csv")

    assert events == figures.resolution_events
    assert sum(int(row["resolved"]) for row in reported) == figures.resolution_events
    assert tickets == figures.resolved_tickets
    assert sum(int(row["resolution_count"]) for row in reported) == figures.resolved_tickets


def test_median_resolution_per_department(runs: PipelineRuns, figures: LogFigures) -> None:
    reported = {
        row["department"]: float(row["resolution_median_seconds"]) for row in read_report(runs.first, "departments-all.csv")
    }

    assert sorted(reported) == sorted(figures.median_resolution_seconds)
    for department, seconds in figures.median_resolution_seconds.items():
        assert reported[department] == pytest.approx(seconds), department


def test_events_per_agent(runs: PipelineRuns, figures: LogFigures) -> None:
    # One row becomes zero to three events, so no table counts rows. The agent events
    # that the reports keep per agent are the assignments and the first public replies.
    agents = {name for (name,) in query(runs, "reports", "SELECT name FROM {schema}.agents")}
    assignments = query(
        runs,
        "reports",
        "SELECT a.name, count(*) FROM {schema}.ticket_history h JOIN {schema}.agents a ON a.agent_id = h.assigned_agent_id "
        "WHERE h.event_type = 'Ticket.Assigned' GROUP BY a.name",
    )
    first_responses = {
        row["agent_name"]: int(row["first_response_count"])
        for row in read_report(runs.first, "agents-all.csv")
        if int(row["first_response_count"]) > 0
    }

    assert agents == figures.agents
    assert dict(assignments) == dict(figures.assignments_per_agent)
    assert first_responses == dict(figures.first_responses_per_agent)


def test_files_written(runs: PipelineRuns, figures: LogFigures) -> None:
    for name in (*CSV_FILES, *PNG_FILES):
        path = runs.first.output_dir / name
        assert path.is_file(), f"{name} is missing"
        assert path.stat().st_size > 0, f"{name} is empty"
    for name in PNG_FILES:
        assert (runs.first.output_dir / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), name
    daily = read_report(runs.first, "departments.csv")
    assert sum(int(row["opened"]) for row in daily) == sum(figures.tickets_per_department.values())
    assert len({row["day"] for row in daily}) > 1_000


def test_printed_output(runs: PipelineRuns) -> None:
    output = runs.first.output

    assert output.count("no differences:") == len(GROUPS)
    assert "only in live" not in output
    assert "only in rebuilt" not in output
    assert "replay --verify: the rebuilt tables equal the live ones for reports, retention, notifications" in output
    assert "wall time per stage:" in output
    for stage in (*STAGES, "total"):
        assert f"\n  {stage} " in output, f"no time printed for stage {stage}"
    assert "departments, 2010-01-13 to 2014-01-03 (--period all, times in hours): 7 row(s)" in output
    assert "customer-cohorts: share of each cohort" in output
    assert "agent-cohorts: share of each cohort" in output
    assert "customer retention rate (CRR) per year" in output
    assert "agent turnover per year" in output
    assert "the log has no channel column" in output


def test_second_run_stores_nothing_new(runs: PipelineRuns) -> None:
    assert runs.second.stored_events == runs.first.stored_events
    for name in CSV_FILES:
        first = (runs.first.output_dir / name).read_bytes()
        second = (runs.second.output_dir / name).read_bytes()
        assert second == first, f"{name} differs between the two runs"
    assert "replay --verify" not in runs.second.output
    assert "\n  reports " in runs.second.output
