"""`ticketing report NAME`: print a named report as a table, CSV or JSON.

The pipeline renders its reports with the same functions: `report_connection`,
`write_csv` and `print_table`.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from projections.report_queries import Layout, Period
from ticketing.cli.servers import require_servers
from ticketing.settings import Settings

if TYPE_CHECKING:
    from projections.report_queries import ReportResult


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def report(
    name: str = typer.Argument(..., help="Report name, e.g. departments, agents, channels, agent-time, tickets."),
    output_format: OutputFormat = typer.Option(OutputFormat.table, "--format", help="Output format."),
    date_from: datetime = typer.Option(
        None, "--from", formats=["%Y-%m-%d"], help="First UTC day included, as YYYY-MM-DD."
    ),
    date_to: datetime = typer.Option(None, "--to", formats=["%Y-%m-%d"], help="Last UTC day included, as YYYY-MM-DD."),
    department: str = typer.Option(None, "--department", help="Only this department."),
    period: Period = typer.Option(
        None,
        "--period",
        help="Days covered by one row of departments, agents, channels and agent-time: "
        "day (the default), week (Monday to Sunday), month, or all (one row for the whole date range).",
    ),
    layout: Layout = typer.Option(
        Layout.long,
        "--layout",
        help="Shape of customer-cohorts and agent-cohorts: long (a row per cohort and month offset) "
        "or pivot (a row per cohort, with the share in percent at month offsets 0 to 12).",
    ),
) -> None:
    """Print a named report from the projection tables; the list of names is in the error for an unknown one."""
    # The registry imports every projection module, and each registers its reports.
    import projections.registry  # noqa: F401
    from projections.report_queries import ReportFilters, UnknownReport, check_options, run_report

    try:
        filters = ReportFilters(
            date_from=date_from.date() if date_from else None,
            date_to=date_to.date() if date_to else None,
            department=department,
            period=period,
        )
        # Checked before connecting, so a mistyped name fails fast even without a database.
        check_options(name, filters, layout)
    except (ValueError, UnknownReport) as error:
        raise typer.BadParameter(str(error)) from error

    settings = Settings.from_env()
    with require_servers(settings, postgres=True), report_connection(settings) as conn:
        try:
            result = run_report(conn, settings, name, filters, layout)
        except ValueError as error:
            # A report that cannot apply a filter (retention has no departments) raises ValueError.
            raise typer.BadParameter(str(error)) from error

    if output_format is OutputFormat.csv:
        write_csv(result, sys.stdout)
    elif output_format is OutputFormat.json:
        _write_json(result)
    else:
        print_table(result, f"{name}: {len(result.rows)} row(s)")


@contextmanager
def report_connection(settings: Settings) -> Iterator[psycopg.Connection]:
    """Yield an autocommit connection whose session prints timestamps in UTC."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        # Timestamps print in UTC, the time zone every report day is counted in.
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


def write_csv(result: ReportResult, stream: TextIO) -> None:
    """Write the report as CSV with a header row; an empty value is an empty field."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow(["" if value is None else _plain(value) for value in row])


def _write_json(result: ReportResult) -> None:
    rows = [{column: _plain(value) for column, value in zip(result.columns, row)} for row in result.rows]
    json.dump(rows, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_table(result: ReportResult, title: str) -> None:
    """Print the report as a table on standard output, floats with one decimal."""
    cells = [[_cell(value) for value in row] for row in result.rows]
    table = Table(title=title, title_justify="left")
    for column in result.columns:
        table.add_column(column, no_wrap=True)
    for row in cells:
        table.add_row(*row)
    # Daily reports have about twenty columns. Squeezed into a terminal's width, rich
    # would print one character per line, so the table gets the width it needs.
    widths = [max([len(column), *(len(row[index]) for row in cells)]) for index, column in enumerate(result.columns)]
    console = Console()
    console.width = max(console.width, sum(widths) + 3 * len(widths) + 1)
    console.print(table)


def _plain(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(_plain(value))


def register(app: typer.Typer) -> None:
    app.command(name="report")(report)
