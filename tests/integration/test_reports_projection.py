"""The reports group, fed through Kafka, against figures computed from the same events in Python."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import psycopg
import pytest
from typer.testing import CliRunner

from projections.report_queries import REPORTS, ReportFilters
from tests.integration.test_consumer_fixtures import (  # noqa: F401  (fixtures)
    DAILY_VIEWS,
    actual_daily,
    assert_daily_equal,
    consume_until_caught_up,
    environment,
    group_settings,
    produce,
    rows,
)
from tests.unit.test_reports_expected import (
    History,
    build_scenario,
    expected_agent_time,
    expected_daily,
    expected_tickets,
)
from ticketing.cli import _register_commands, app
from ticketing.settings import Settings


@pytest.fixture
def consumed(group_settings: Settings) -> tuple[Settings, History]:
    """The scenario sent to Kafka, with part of it sent twice as the relay may, and consumed."""
    history = build_scenario()
    events = history.in_time_order()
    produce(group_settings, events + events[40:90])
    consume_until_caught_up(group_settings, batch_size=97)
    return group_settings, history


@pytest.mark.parametrize("dimension", ["department", "channel", "agent"])
def test_daily_view_matches_expected(consumed: tuple[Settings, History], dimension: str) -> None:
    settings, history = consumed
    view, key = DAILY_VIEWS[dimension]

    assert_daily_equal(actual_daily(settings, view, key), expected_daily(history, dimension), view)


def test_daily_report_filtered_by_department(consumed: tuple[Settings, History]) -> None:
    settings, history = consumed

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        result = REPORTS["agents"](conn, settings, ReportFilters(department="technical"))
    actual = {}
    for values in result.rows:
        row = dict(zip(result.columns, values))
        slot = (row.pop("day"), row.pop("agent_id"))
        row.pop("agent_name")
        row.pop("temporary")
        actual[slot] = row

    assert_daily_equal(actual, expected_daily(history, "agent", department="technical"), "agents in technical")


def test_agent_time_matches_expected(consumed: tuple[Settings, History]) -> None:
    settings, history = consumed
    expected = expected_agent_time(history)

    actual = {(row.pop("day"), row.pop("agent_id")): row for row in rows(settings, "SELECT * FROM {schema}.agent_time_daily")}

    assert sorted(actual, key=str) == sorted(expected, key=str)
    for slot, expected_row in expected.items():
        for column, value in expected_row.items():
            assert actual[slot][column] == pytest.approx(value), f"{slot} {column}"
    temporary = {row["agent_name"] for row in actual.values() if row["temporary"]}
    assert temporary == {"Cy"}


def test_ticket_facts_match_expected(consumed: tuple[Settings, History]) -> None:
    settings, history = consumed
    expected = expected_tickets(history)

    actual = {row.pop("ticket_id"): row for row in rows(settings, "SELECT * FROM {schema}.tickets")}

    assert sorted(actual) == sorted(expected)
    for ticket, expected_row in expected.items():
        for column, value in expected_row.items():
            assert actual[ticket][column] == value, f"ticket {ticket} {column}"


def test_report_command_formats_and_filters(consumed: tuple[Settings, History]) -> None:
    settings, history = consumed
    _register_commands()
    runner = CliRunner()
    env = environment(settings)
    day = date(2024, 5, 7)

    as_csv = runner.invoke(app, ["report", "departments", "--format", "csv", "--from", "2024-05-07", "--to", "2024-05-07"], env=env)
    as_json = runner.invoke(app, ["report", "tickets", "--format", "json", "--department", "billing"], env=env)
    as_table = runner.invoke(app, ["report", "agent-time"], env=env)
    unknown = runner.invoke(app, ["report", "no-such-report"], env=env)

    assert as_csv.exit_code == 0, as_csv.output
    csv_rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    expected = {key: values for (when, key), values in expected_daily(history, "department").items() if when == day}
    assert {row["department"]: int(row["opened"]) for row in csv_rows} == {
        key: values.get("opened", 0) for key, values in expected.items()
    }
    assert as_json.exit_code == 0, as_json.output
    tickets = json.loads(as_json.stdout)
    assert {ticket["ticket_id"] for ticket in tickets} == {
        ticket for ticket, facts in expected_tickets(history).items() if facts["department"] == "billing"
    }
    assert as_table.exit_code == 0, as_table.output
    assert "Cy" in as_table.stdout
    assert unknown.exit_code != 0
    assert "known reports" in unknown.output
