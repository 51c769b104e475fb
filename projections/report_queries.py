"""Named reports: each one returns rows from a projection schema, filtered by date and department.

`ticketing report NAME` and the pipeline run reports with `run_report`, which looks them
up in REPORTS. Another projection module adds its own with `@register_report("name")`;
it must be imported by `projections.registry`, which the command imports first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Any, Callable

import psycopg
from psycopg import sql

from projections import reports_views
from projections.reports_views import Period
from ticketing.settings import Settings


@dataclass(frozen=True)
class ReportFilters:
    """Inclusive UTC date range, department and period of the rows. None means no limit.

    A period of None gives each report its own granularity: days for the reports that
    take a period, and whatever the other reports have (tickets, cohort months).
    """

    date_from: date | None = None
    date_to: date | None = None
    department: str | None = None
    period: Period | None = None

    def __post_init__(self) -> None:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"the date range is empty: from {self.date_from} is after to {self.date_to}")
        if self.period is not None:
            # Accept "week" as well as Period.week from Python callers; Period() raises
            # ValueError for any other name.
            object.__setattr__(self, "period", Period(self.period))


@dataclass(frozen=True)
class ReportResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


class UnknownReport(LookupError):
    """No report is registered under the requested name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown report {name!r}; known reports: {', '.join(sorted(REPORTS))}")
        self.name = name


class UnsupportedOption(ValueError):
    """The report does not take a requested option, for example a period for a cohort report."""


class Layout(str, Enum):
    """Shape of a cohort report: one row per cohort and month offset, or one row per cohort."""

    long = "long"
    pivot = "pivot"


# A pivot shows the first year of each cohort: month offsets 0 to 12.
PIVOT_MAX_OFFSET = 12


ReportQuery = Callable[[psycopg.Connection, Settings, ReportFilters], ReportResult]

REPORTS: dict[str, ReportQuery] = {}

# Reports that accept ReportFilters.period. run_report rejects a period for the others.
PERIOD_REPORTS: set[str] = set()

# Cohort reports that have a pivot layout, with the column that contains the cohort's size.
PIVOT_REPORTS: dict[str, str] = {}


def register_report(
    name: str, *, periods: bool = False, pivot_size_column: str | None = None
) -> Callable[[ReportQuery], ReportQuery]:
    """Register a function as the named report `name`; a name can be registered once.

    With `periods`, the function reads ReportFilters.period. Without it, `run_report`
    rejects a period before the function runs. `pivot_size_column` gives a cohort
    report the pivot layout (see cohort_pivot), whose rows need the columns `cohort`,
    `month_offset`, `share` and `complete`.
    """

    def register(query: ReportQuery) -> ReportQuery:
        if name in REPORTS and REPORTS[name] is not query:
            raise ValueError(
                f"report {name!r} is already registered by {REPORTS[name].__module__}; choose another name"
            )
        REPORTS[name] = query
        if periods:
            PERIOD_REPORTS.add(name)
        if pivot_size_column is not None:
            PIVOT_REPORTS[name] = pivot_size_column
        return query

    return register


def check_options(name: str, filters: ReportFilters, layout: Layout = Layout.long) -> None:
    """Raise UnknownReport or UnsupportedOption when the report cannot run with these options."""
    if name not in REPORTS:
        raise UnknownReport(name)
    if filters.period is not None and name not in PERIOD_REPORTS:
        raise UnsupportedOption(
            f"the {name} report has no --period; --period works with {', '.join(sorted(PERIOD_REPORTS))}"
        )
    if layout is Layout.pivot and name not in PIVOT_REPORTS:
        raise UnsupportedOption(
            f"the {name} report has no pivot layout; --layout pivot works with {', '.join(sorted(PIVOT_REPORTS))}"
        )


def run_report(
    conn: psycopg.Connection, settings: Settings, name: str, filters: ReportFilters, layout: Layout = Layout.long
) -> ReportResult:
    """Run the named report in `layout`. Before any query runs, raise as check_options does."""
    check_options(name, filters, layout)
    result = REPORTS[name](conn, settings, filters)
    if layout is Layout.pivot:
        return cohort_pivot(result, PIVOT_REPORTS[name])
    return result


def cohort_pivot(result: ReportResult, size_column: str, max_offset: int = PIVOT_MAX_OFFSET) -> ReportResult:
    """Turn a long cohort report into one row per cohort: its label, its size and columns m0 to m{max_offset}.

    Column mN is the share of the cohort in percent in month cohort + N. A cell stays
    empty when that month is not complete yet (it contains the group's clock, so the
    share can still grow) or lies after the clock.
    """
    position = {column: index for index, column in enumerate(result.columns)}
    offsets = range(max_offset + 1)
    pivot: dict[str, list[Any]] = {}
    for row in result.rows:
        cohort = row[position["cohort"]]
        cells = pivot.setdefault(cohort, [cohort, row[position[size_column]], *(None for _ in offsets)])
        offset = row[position["month_offset"]]
        share = row[position["share"]]
        if offset <= max_offset and share is not None and row[position["complete"]]:
            cells[2 + offset] = round(share * 100, 2)
    columns = ["cohort", size_column, *(f"m{offset}" for offset in offsets)]
    return ReportResult(columns=columns, rows=[tuple(cells) for cells in pivot.values()])


def run_query(conn: psycopg.Connection, query: sql.Composable, params: dict[str, Any]) -> ReportResult:
    with conn.cursor() as cursor:
        cursor.execute(query, params)
        columns = [column.name for column in cursor.description or ()]
        return ReportResult(columns=columns, rows=cursor.fetchall())


def _params(filters: ReportFilters) -> dict[str, Any]:
    return {"date_from": filters.date_from, "date_to": filters.date_to, "department": filters.department}


_IN_RANGE = sql.SQL(
    "(%(date_from)s::date IS NULL OR {day} >= %(date_from)s::date) AND (%(date_to)s::date IS NULL OR {day} <= %(date_to)s::date)"
)


def _figures_report(conn: psycopg.Connection, settings: Settings, filters: ReportFilters, dimension: str) -> ReportResult:
    schema = settings.projection_schema("reports")
    period = filters.period or Period.day
    figures = reports_views.figures_query(
        schema, dimension, period, department_filter=filters.department is not None, date_range=True
    )
    order = [sql.Identifier(column) for column in reports_views.period_columns(period)[:1]]
    order.append(sql.SQL("{} NULLS FIRST").format(sql.Identifier(reports_views.DIMENSIONS[dimension].name)))
    query = sql.SQL("SELECT * FROM ({figures}) AS figures ORDER BY {order}").format(
        figures=figures, order=sql.SQL(", ").join(order)
    )
    return run_query(conn, query, _params(filters))


@register_report("departments", periods=True)
def departments(conn: psycopg.Connection, settings: Settings, filters: ReportFilters) -> ReportResult:
    """Return the figures per department and period (a day by default)."""
    return _figures_report(conn, settings, filters, "department")


@register_report("agents", periods=True)
def agents(conn: psycopg.Connection, settings: Settings, filters: ReportFilters) -> ReportResult:
    """Return the figures per agent and period. An empty agent is work on unassigned tickets."""
    return _figures_report(conn, settings, filters, "agent")


@register_report("channels", periods=True)
def channels(conn: psycopg.Connection, settings: Settings, filters: ReportFilters) -> ReportResult:
    """Return the figures per channel and period."""
    return _figures_report(conn, settings, filters, "channel")


@register_report("agent-time", periods=True)
def agent_time(conn: psycopg.Connection, settings: Settings, filters: ReportFilters) -> ReportResult:
    """Return online, paused and work seconds per agent and period. A department keeps that department's agents."""
    schema = settings.projection_schema("reports")
    period = filters.period or Period.day
    times = reports_views.agent_time_query(
        schema, period, department_filter=filters.department is not None, date_range=True
    )
    first_column = sql.Identifier(reports_views.period_columns(period)[0])
    query = sql.SQL("SELECT * FROM ({times}) AS times ORDER BY {first_column}, agent_id").format(
        times=times, first_column=first_column
    )
    return run_query(conn, query, _params(filters))


_TICKETS = """
SELECT t.ticket_id, t.department, t.channel, t.customer_id, t.agent_id, a.name AS agent_name,
       t.priority, t.status, t.opened_at, t.first_response_at,
       extract(epoch FROM t.first_response_at - t.opened_at)::double precision AS first_response_seconds,
       t.resolved_at, t.resolution,
       extract(epoch FROM t.resolved_at - t.opened_at)::double precision AS resolution_seconds,
       t.closed_at, t.reopen_count, t.rating, t.callback_outcome, t.public_reply_count
FROM {schema}.tickets t LEFT JOIN {schema}.agents a ON a.agent_id = t.agent_id
WHERE {in_range} AND (%(department)s::text IS NULL OR t.department = %(department)s::text)
ORDER BY t.opened_at, t.ticket_id
"""


@register_report("tickets")
def tickets(conn: psycopg.Connection, settings: Settings, filters: ReportFilters) -> ReportResult:
    """Return one row per ticket opened in the date range, filtered by its current department."""
    schema = sql.Identifier(settings.projection_schema("reports"))
    opened_day = sql.SQL("(t.opened_at AT TIME ZONE 'UTC')::date")
    query = sql.SQL(_TICKETS).format(schema=schema, in_range=_IN_RANGE.format(day=opened_day))
    return run_query(conn, query, _params(filters))
