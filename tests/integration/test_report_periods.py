"""`ticketing report --period` on the reports group, against figures computed from the same events in Python.

The two-month history goes through Kafka into the reports schema once per test. Every
period row is compared with tests/unit/test_report_periods.py, which computes each
period's medians and percentiles from the events, not from the daily rows.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

import projections.registry  # noqa: F401  (registers the retention reports)
from projections.report_queries import Period, ReportFilters, ReportResult, UnsupportedOption, run_report
from tests.integration.test_consumer_fixtures import (  # noqa: F401  (fixtures)
    FLOAT_COLUMNS,
    assert_daily_equal,
    consume_until_caught_up,
    environment,
    group_settings,
    produce,
)
from tests.unit.test_report_periods import (
    Slot,
    expected_agent_time_periods,
    expected_periods,
    two_month_history,
)
from tests.unit.test_reports_expected import History, expected_daily
from ticketing.cli import _register_commands, app
from ticketing.settings import Settings

REPORT_DIMENSIONS = {"departments": ("department", "department"), "agents": ("agent", "agent_id"),
                     "channels": ("channel", "channel")}

# The columns of the daily reports in their order, without the key columns.
DAY_COLUMNS = [
    "day", "opened", "resolved", "closed", "reopened", "backlog", "first_response_count",
    "first_response_mean_seconds", "first_response_median_seconds", "first_response_p90_seconds",
    "resolution_count", "resolution_mean_seconds", "resolution_median_seconds", "resolution_p90_seconds",
    "one_touch_resolutions", "callbacks_requested", "callbacks_completed", "callbacks_missed", "ratings",
    "average_rating",
]

# A range that starts on a Wednesday and ends on a Sunday in the next month, so it cuts
# the first week and the first month.
CUT_FROM = date(2024, 5, 8)
CUT_TO = date(2024, 6, 2)


@pytest.fixture
def consumed(group_settings: Settings) -> tuple[Settings, History]:
    """The two-month history sent to Kafka, with part of it sent twice as the relay may, and consumed."""
    history = two_month_history()
    events = history.in_time_order()
    produce(group_settings, events + events[100:160])
    consume_until_caught_up(group_settings, batch_size=113)
    return group_settings, history


def report(settings: Settings, name: str, filters: ReportFilters) -> ReportResult:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return run_report(conn, settings, name, filters)


def period_rows(result: ReportResult, key_column: str) -> dict[Slot, dict[str, Any]]:
    rows = {}
    for values in result.rows:
        row = dict(zip(result.columns, values))
        slot = (row.pop("period_start"), row.pop("period_end"), row.pop(key_column))
        row.pop("agent_name", None)
        row.pop("temporary", None)
        rows[slot] = row
    return rows


def assert_periods_equal(actual: dict[Slot, dict[str, Any]], expected: dict[Slot, dict[str, Any]], what: str) -> None:
    assert sorted(actual, key=str) == sorted(expected, key=str), f"{what}: different (period, key) rows"
    for slot, expected_row in expected.items():
        for column, value in actual[slot].items():
            wanted = expected_row.get(column, None if column in FLOAT_COLUMNS else 0)
            if column in FLOAT_COLUMNS and wanted is not None:
                assert value == pytest.approx(wanted), f"{what} {slot} {column}"
            else:
                assert value == wanted, f"{what} {slot} {column}"


@pytest.mark.parametrize("name", sorted(REPORT_DIMENSIONS))
def test_periods_match_expected(consumed: tuple[Settings, History], name: str) -> None:
    settings, history = consumed
    dimension, key_column = REPORT_DIMENSIONS[name]

    for period in (Period.week, Period.month, Period.all):
        result = report(settings, name, ReportFilters(period=period))

        assert result.columns[:2] == ["period_start", "period_end"]
        expected = expected_periods(history, dimension, period.value)
        assert_periods_equal(period_rows(result, key_column), expected, f"{name} per {period.value}")


@pytest.mark.parametrize("period", [Period.week, Period.month, Period.all])
def test_periods_with_range_and_department(consumed: tuple[Settings, History], period: Period) -> None:
    settings, history = consumed
    filters = ReportFilters(date_from=CUT_FROM, date_to=CUT_TO, department="technical", period=period)

    result = report(settings, "agents", filters)

    expected = expected_periods(
        history, "agent", period.value, date_from=CUT_FROM, date_to=CUT_TO, department="technical"
    )
    actual = period_rows(result, "agent_id")
    assert_periods_equal(actual, expected, f"agents in technical per {period.value}")
    assert min(start for start, _, _ in actual) == CUT_FROM
    assert max(end for _, end, _ in actual) == CUT_TO


def test_whole_range_is_one_row_per_department(consumed: tuple[Settings, History]) -> None:
    settings, history = consumed

    result = report(settings, "departments", ReportFilters(period=Period.all))

    departments = [row[result.columns.index("department")] for row in result.rows]
    assert sorted(departments) == sorted({key for (_, key) in expected_daily(history, "department")})
    assert len(departments) == len(set(departments))


@pytest.mark.parametrize("name", sorted(REPORT_DIMENSIONS))
def test_day_period_is_unchanged(consumed: tuple[Settings, History], name: str) -> None:
    settings, history = consumed
    dimension, key_column = REPORT_DIMENSIONS[name]

    default = report(settings, name, ReportFilters(date_from=CUT_FROM, date_to=CUT_TO))
    explicit = report(settings, name, ReportFilters(date_from=CUT_FROM, date_to=CUT_TO, period=Period.day))

    assert [column for column in default.columns if column not in (key_column, "agent_name", "temporary")] == DAY_COLUMNS
    assert explicit == default
    actual = {}
    for values in default.rows:
        row = dict(zip(default.columns, values))
        slot = (row.pop("day"), row.pop(key_column))
        row.pop("agent_name", None)
        row.pop("temporary", None)
        actual[slot] = row
    expected = {
        slot: values for slot, values in expected_daily(history, dimension).items() if CUT_FROM <= slot[0] <= CUT_TO
    }
    assert_daily_equal(actual, expected, f"{name} per day")


@pytest.mark.parametrize("period", [Period.week, Period.month, Period.all])
def test_agent_time_periods_are_sums(consumed: tuple[Settings, History], period: Period) -> None:
    settings, history = consumed

    result = report(settings, "agent-time", ReportFilters(date_from=CUT_FROM, date_to=CUT_TO, period=period))

    actual = period_rows(result, "agent_id")
    expected = expected_agent_time_periods(history, period.value, date_from=CUT_FROM, date_to=CUT_TO)
    assert sorted(actual, key=str) == sorted(expected, key=str)
    for slot, expected_row in expected.items():
        for column, seconds in expected_row.items():
            assert actual[slot][column] == pytest.approx(seconds), f"agent time {slot} {column}"


def test_period_rejected_by_other_reports(consumed: tuple[Settings, History]) -> None:
    settings, _ = consumed

    for name in ("tickets", "customer-cohorts", "agent-turnover"):
        with pytest.raises(UnsupportedOption, match="has no --period"):
            report(settings, name, ReportFilters(period=Period.week))


def test_report_command_takes_period(consumed: tuple[Settings, History]) -> None:
    settings, history = consumed
    _register_commands()
    runner = CliRunner()
    env = environment(settings)

    weekly = runner.invoke(app, ["report", "channels", "--period", "week", "--format", "csv",
                                 "--from", "2024-06-01", "--to", "2024-06-30"], env=env)
    cohorts = runner.invoke(app, ["report", "customer-cohorts", "--period", "month"], env=env)
    pivot = runner.invoke(app, ["report", "departments", "--layout", "pivot"], env=env)
    unknown_period = runner.invoke(app, ["report", "departments", "--period", "year"], env=env)

    assert weekly.exit_code == 0, weekly.output
    rows = list(csv.DictReader(io.StringIO(weekly.stdout)))
    expected = expected_periods(history, "channel", "week", date_from=date(2024, 6, 1), date_to=date(2024, 6, 30))
    assert {(row["period_start"], row["period_end"], row["channel"]): int(row["opened"]) for row in rows} == {
        (start.isoformat(), end.isoformat(), key): values["opened"] for (start, end, key), values in expected.items()
    }
    assert cohorts.exit_code == 2
    assert "has no --period" in cohorts.output
    assert pivot.exit_code == 2
    assert "no pivot layout" in pivot.output
    assert unknown_period.exit_code == 2
