"""Named reports: each one returns rows from a projection schema, filtered by date and department.

`ticketing report NAME` looks reports up in REPORTS. Another projection module adds its
own with `@register_report("name")`; it must be imported by `projections.registry`,
which the command imports first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

import psycopg
from psycopg import sql

from projections import reports_views
from ticketing.settings import Settings


@dataclass(frozen=True)
class ReportFilters:
    """Inclusive UTC date range and department; None means no limit."""

    date_from: date | None = None
    date_to: date | None = None
    department: str | None = None

    def __post_init__(self) -> None:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"the date range is empty: from {self.date_from} is after to {self.date_to}")


@dataclass(frozen=True)
class ReportResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


ReportQuery = Callable[[psycopg.Connection, Settings, ReportFilters], ReportResult]

REPORTS: dict[str, ReportQuery] = {}


def register_report(name: str) -> Callable[[ReportQuery], ReportQuery]:
    """Register a function as the named report `name`; a name can be registered once."""

    def register(query: ReportQuery) -> ReportQuery:
        if name in REPORTS and REPORTS[name] is not query:
            raise ValueError(
                f"report {name!r} is already registered by {REPORTS[name].__module__}; choose another name"
            )
        REPORTS[name] = query
        return query

    return register


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


def _daily_report(conn: psycopg.Connection, settings: Settings, filters: ReportFilters, dimension: str) -> ReportResult:
    schema = settings.projection_schema("reports")
    daily = reports_views.daily_query(schema, dimension, department_filter=filters.department is not None)
    key = sql.Identifier(reports_views.DIMENSIONS[dimension].name)
    query = sql.SQL("SELECT * FROM ({daily}) AS daily WHERE {in_range} ORDER BY day, {key} NULLS FIRST").format(
        daily=daily, in_range=_IN_RANGE.format(day=sql.Identifier("day")), key=key
    )
    return run_query(conn, query, _params(filters))


@register_report("departments")
def departments(conn: psycopg.Connection, settings: Settings, filters: ReportFilters) -> ReportResult:
    """Return the daily figures per department."""
    return _daily_report(conn, settings, filters, "department")


@register_report("agents")
def agents(conn: psycopg.Connection, settings: Settings, filters: ReportFilters) -> ReportResult:
    """Return the daily figures per agent; an empty agent is work on unassigned tickets."""
    return _daily_report(conn, settings, filters, "agent")


@register_report("channels")
def channels(conn: psycopg.Connection, settings: Settings, filters: ReportFilters) -> ReportResult:
    """Return the daily figures per channel."""
    return _daily_report(conn, settings, filters, "channel")


@register_report("agent-time")
def agent_time(conn: psycopg.Connection, settings: Settings, filters: ReportFilters) -> ReportResult:
    """Return online, paused and work seconds per agent per day; a department keeps that department's agents."""
    schema = settings.projection_schema("reports")
    daily = reports_views.agent_time_query(schema, department_filter=filters.department is not None)
    query = sql.SQL("SELECT * FROM ({daily}) AS daily WHERE {in_range} ORDER BY day, agent_id").format(
        daily=daily, in_range=_IN_RANGE.format(day=sql.Identifier("day"))
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
