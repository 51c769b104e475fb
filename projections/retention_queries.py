"""Cohort tables and rates computed from the facts of the retention projection.

Every function takes a connection and the schema of the retention group and returns
a list of rows as dicts, in a stable order. The same functions are registered as
named reports for `ticketing report NAME` at the end of this module. SQL counts the facts and the helpers at
the top of this module turn counts into rates, so the arithmetic is tested without a
database. docs/retention-and-notifications.md defines every figure.

Months are calendar months in UTC. The report runs up to the month of the group's
clock (the maximum event time seen by the projection), and a row whose period ends
after that clock carries `complete = False`, because later events can still change it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from projections.report_queries import ReportFilters, ReportResult, register_report
from ticketing.settings import Settings

# A customer is active at instant t when they opened a ticket in [t - 90 days, t).
# Support contact is sporadic: most customers write a few times a year, so a
# one-month window would call nearly everyone lost. A quarter covers the usual gap
# between two contacts of a returning customer.
ACTIVITY_WINDOW_DAYS = 90

# A resolution is followed by a repeat contact when the same customer opens another
# ticket within this many days after it.
REPEAT_CONTACT_WINDOW_DAYS = 7

# Resolutions of this kind are left out of the repeat-contact rate: a duplicate is
# closed in favour of another ticket that is still open, so the contact goes on there.
EXCLUDED_RESOLUTIONS = ("duplicate",)

RATE_DIGITS = 4

_UTC = timezone.utc

Row = dict[str, Any]


# --- cohort arithmetic ----------------------------------------------------------------


def month_start(moment: datetime | date) -> date:
    """Return the first day of the UTC calendar month that contains `moment`."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError(f"expected an aware datetime, got the naive {moment!r}")
        moment = moment.astimezone(_UTC).date()
    return moment.replace(day=1)


def add_months(month: date, count: int) -> date:
    """Return the first day of the month `count` months after the month of `month`."""
    index = month.year * 12 + (month.month - 1) + count
    return date(index // 12, index % 12 + 1, 1)


def month_offset(cohort_month: date, month: date) -> int:
    """Return how many calendar months `month` lies after `cohort_month` (0 for the same month)."""
    return (month.year - cohort_month.year) * 12 + (month.month - cohort_month.month)


def month_end(month: date) -> datetime:
    """Return the instant at which the UTC month of `month` ends (start of the next month)."""
    following = add_months(month, 1)
    return datetime(following.year, following.month, 1, tzinfo=_UTC)


def ratio(numerator: int, denominator: int | float) -> float | None:
    """Return numerator / denominator rounded to RATE_DIGITS places, or None when the denominator is 0."""
    if denominator == 0:
        return None
    return round(numerator / denominator, RATE_DIGITS)


def customer_retention_rate(active_at_start: int, active_at_end: int, acquired: int) -> float | None:
    """Return CRR = (E - N) / S, or None for a period that starts with no active customer."""
    return ratio(active_at_end - acquired, active_at_start)


def turnover_rate(leavers: int, headcount_start: int, headcount_end: int) -> float | None:
    """Return leavers divided by the mean of the headcounts at start and end, or None if both are 0."""
    return ratio(leavers, (headcount_start + headcount_end) / 2)


# --- queries --------------------------------------------------------------------------


def event_clock(conn: psycopg.Connection, schema: str = "retention") -> datetime | None:
    """Return the time up to which the facts are known, or None when there is no fact yet.

    That is the group's clock stored by after_batch, or the latest fact when it is
    later, for instance before the first batch of a replay has finished.
    """
    query = sql.SQL(
        "SELECT greatest("
        "  (SELECT as_of FROM {0}.event_clock),"
        "  (SELECT max(opened_at) FROM {0}.ticket_openings),"
        "  (SELECT max(resolved_at) FROM {0}.ticket_resolutions),"
        "  (SELECT max(greatest(hired_at, left_at, engagement_ended_at)) FROM {0}.agent_employment))"
    ).format(sql.Identifier(schema))
    row = conn.execute(query).fetchone()
    return row[0] if row else None


def customer_cohorts(conn: psycopg.Connection, schema: str = "retention") -> list[Row]:
    """Return, per cohort month and month offset, the share of the cohort that opened a ticket."""
    as_of = event_clock(conn, schema)
    if as_of is None:
        return []

    rows = _fetch(conn, _CUSTOMER_COHORTS, schema, as_of=as_of)
    return [
        {
            "cohort_month": row["cohort_month"],
            "month_offset": month_offset(row["cohort_month"], row["month"]),
            "month": row["month"],
            "cohort_customers": row["cohort_customers"],
            "active_customers": row["active_customers"],
            "active_share": ratio(row["active_customers"], row["cohort_customers"]),
            "complete": month_end(row["month"]) <= as_of,
        }
        for row in rows
    ]


def customer_retention(conn: psycopg.Connection, schema: str = "retention") -> list[Row]:
    """Return per month S, E, N and CRR = (E - N) / S with the activity window of ACTIVITY_WINDOW_DAYS."""
    as_of = event_clock(conn, schema)
    if as_of is None:
        return []

    rows = _fetch(conn, _CUSTOMER_RETENTION, schema, as_of=as_of, window_hours=24 * ACTIVITY_WINDOW_DAYS)
    result = []
    for row in rows:
        acquired = row["new_customers"] + row["reactivated_customers"]
        result.append(
            {
                "month": row["month"],
                "active_at_start": row["active_at_start"],
                "active_at_end": row["active_at_end"],
                "new_customers": row["new_customers"],
                "reactivated_customers": row["reactivated_customers"],
                "retained_customers": row["retained_customers"],
                "retention_rate": customer_retention_rate(
                    row["active_at_start"], row["active_at_end"], acquired
                ),
                "complete": month_end(row["month"]) <= as_of,
            }
        )
    return result


def repeat_contacts(conn: psycopg.Connection, schema: str = "retention") -> list[Row]:
    """Return per month of resolution the share of resolutions followed by another ticket within 7 days."""
    as_of = event_clock(conn, schema)
    if as_of is None:
        return []

    window = timedelta(days=REPEAT_CONTACT_WINDOW_DAYS)
    rows = _fetch(
        conn,
        _REPEAT_CONTACTS,
        schema,
        window_hours=24 * REPEAT_CONTACT_WINDOW_DAYS,
        excluded=list(EXCLUDED_RESOLUTIONS),
    )
    return [
        {
            "month": row["month"],
            "resolutions": row["resolutions"],
            "repeat_contacts": row["repeat_contacts"],
            "repeat_contact_rate": ratio(row["repeat_contacts"], row["resolutions"]),
            "customers": row["customers"],
            "customers_with_repeat": row["customers_with_repeat"],
            "customer_repeat_rate": ratio(row["customers_with_repeat"], row["customers"]),
            "complete": month_end(row["month"]) + window <= as_of,
        }
        for row in rows
    ]


def agent_cohorts(conn: psycopg.Connection, schema: str = "retention") -> list[Row]:
    """Return, per hire month, employment kind and month offset, the share still employed at the month's end."""
    as_of = event_clock(conn, schema)
    if as_of is None:
        return []

    rows = _fetch(conn, _AGENT_COHORTS, schema, as_of=as_of)
    return [
        {
            "cohort_month": row["cohort_month"],
            "employment": row["employment"],
            "month_offset": month_offset(row["cohort_month"], row["month"]),
            "month": row["month"],
            "hired": row["hired"],
            "still_employed": row["still_employed"],
            "still_employed_share": ratio(row["still_employed"], row["hired"]),
            "complete": month_end(row["month"]) <= as_of,
        }
        for row in rows
    ]


def agent_turnover(conn: psycopg.Connection, schema: str = "retention") -> list[Row]:
    """Return per month and employment kind the headcounts, leavers and turnover rate."""
    as_of = event_clock(conn, schema)
    if as_of is None:
        return []

    rows = _fetch(conn, _AGENT_TURNOVER, schema, as_of=as_of)
    return [
        {
            "month": row["month"],
            "employment": row["employment"],
            "headcount_start": row["headcount_start"],
            "headcount_end": row["headcount_end"],
            "average_headcount": (row["headcount_start"] + row["headcount_end"]) / 2,
            "hires": row["hires"],
            "leavers": row["leavers"],
            "planned_ends": row["planned_ends"],
            "turnover_rate": turnover_rate(row["leavers"], row["headcount_start"], row["headcount_end"]),
            "complete": month_end(row["month"]) <= as_of,
        }
        for row in rows
    ]


QUERIES: dict[str, Callable[[psycopg.Connection, str], list[Row]]] = {
    "customer-cohorts": customer_cohorts,
    "customer-retention": customer_retention,
    "repeat-contacts": repeat_contacts,
    "agent-cohorts": agent_cohorts,
    "agent-turnover": agent_turnover,
}


def _fetch(conn: psycopg.Connection, template: str, schema: str, **params: Any) -> list[Row]:
    query = sql.SQL(template).format(schema=sql.Identifier(schema))
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


# --- SQL ------------------------------------------------------------------------------
#
# Month arithmetic happens on UTC wall-clock timestamps (timestamptz AT TIME ZONE 'UTC')
# and windows are whole hours, so the results do not depend on the session's TimeZone:
# PostgreSQL adds "N days" to a timestamptz in the session's zone, across DST changes.

_CUSTOMER_COHORTS = """
WITH cohorts AS (
    SELECT customer_id, date_trunc('month', first_opened_at AT TIME ZONE 'UTC') AS cohort_month
    FROM {schema}.customer_first_tickets
), sizes AS (
    SELECT cohort_month, count(*) AS cohort_customers FROM cohorts GROUP BY cohort_month
), activity AS (
    SELECT DISTINCT customer_id, date_trunc('month', opened_at AT TIME ZONE 'UTC') AS month
    FROM {schema}.ticket_openings
), active AS (
    SELECT cohorts.cohort_month, activity.month, count(*) AS active_customers
    FROM cohorts JOIN activity USING (customer_id)
    GROUP BY cohorts.cohort_month, activity.month
)
SELECT sizes.cohort_month::date AS cohort_month,
       grid.month::date AS month,
       sizes.cohort_customers,
       coalesce(active.active_customers, 0) AS active_customers
FROM sizes
CROSS JOIN LATERAL generate_series(
    sizes.cohort_month, date_trunc('month', %(as_of)s AT TIME ZONE 'UTC'), interval '1 month'
) AS grid(month)
LEFT JOIN active ON active.cohort_month = sizes.cohort_month AND active.month = grid.month
ORDER BY 1, 2
"""

# For each month, the tickets in [start - window, end) decide the customer's state:
# a ticket before the start makes them active at the start, a ticket at or after
# end - window makes them active at the end. Because the window is longer than any
# month, a customer active at the end but not at the start has opened a ticket
# during the month: that ticket is either their first (new) or a return (reactivated).
_CUSTOMER_RETENTION = """
WITH months AS (
    SELECT grid.month AS month,
           grid.month AT TIME ZONE 'UTC' AS starts_at,
           (grid.month + interval '1 month') AT TIME ZONE 'UTC' AS ends_at
    FROM generate_series(
        (SELECT date_trunc('month', min(opened_at) AT TIME ZONE 'UTC') FROM {schema}.ticket_openings),
        date_trunc('month', %(as_of)s AT TIME ZONE 'UTC'),
        interval '1 month'
    ) AS grid(month)
), states AS (
    SELECT months.month, customer.at_start, customer.at_end, customer.first_time
    FROM months
    LEFT JOIN LATERAL (
        SELECT bool_or(t.opened_at < months.starts_at) AS at_start,
               bool_or(t.opened_at >= months.ends_at - make_interval(hours => %(window_hours)s)) AS at_end,
               bool_and(f.first_opened_at >= months.starts_at) AS first_time
        FROM {schema}.ticket_openings AS t
        JOIN {schema}.customer_first_tickets AS f USING (customer_id)
        WHERE t.opened_at >= months.starts_at - make_interval(hours => %(window_hours)s)
          AND t.opened_at < months.ends_at
        GROUP BY t.customer_id
    ) AS customer ON true
)
SELECT month::date AS month,
       count(*) FILTER (WHERE at_start) AS active_at_start,
       count(*) FILTER (WHERE at_end) AS active_at_end,
       count(*) FILTER (WHERE at_start AND at_end) AS retained_customers,
       count(*) FILTER (WHERE at_end AND NOT at_start AND first_time) AS new_customers,
       count(*) FILTER (WHERE at_end AND NOT at_start AND NOT first_time) AS reactivated_customers
FROM states
GROUP BY month
ORDER BY month
"""

_REPEAT_CONTACTS = """
WITH resolutions AS (
    SELECT date_trunc('month', r.resolved_at AT TIME ZONE 'UTC')::date AS month,
           opened.customer_id,
           EXISTS (
               SELECT 1 FROM {schema}.ticket_openings AS later
               WHERE later.customer_id = opened.customer_id
                 AND later.ticket_id <> r.ticket_id
                 AND later.opened_at > r.resolved_at
                 AND later.opened_at <= r.resolved_at + make_interval(hours => %(window_hours)s)
           ) AS repeated
    FROM {schema}.ticket_resolutions AS r
    JOIN {schema}.ticket_openings AS opened USING (ticket_id)
    WHERE r.resolution <> ALL (%(excluded)s)
)
SELECT month,
       count(*) AS resolutions,
       count(*) FILTER (WHERE repeated) AS repeat_contacts,
       count(DISTINCT customer_id) AS customers,
       count(DISTINCT customer_id) FILTER (WHERE repeated) AS customers_with_repeat
FROM resolutions
GROUP BY month
ORDER BY month
"""

# One row per hired agent with the first of its separation events. A temporary
# agent's separation is "ended_as_planned" for EngagementEnded(ended_early=false) and
# for a Left on or after the engagement's last day, "ended_early" for an early
# EngagementEnded, and "left" for any other Left.
_AGENT_FACTS = """
agent_facts AS (
    SELECT agent_id, employment, hired_at, separated_at, separation,
           separation IS NOT NULL
               AND (employment IS DISTINCT FROM 'temporary' OR separation <> 'ended_as_planned')
               AS counts_as_turnover
    FROM (
        SELECT agent_id, employment, hired_at,
               CASE WHEN ended_first THEN engagement_ended_at ELSE left_at END AS separated_at,
               CASE
                   WHEN ended_first AND ended_early THEN 'ended_early'
                   WHEN ended_first THEN 'ended_as_planned'
                   WHEN left_at IS NULL THEN NULL
                   WHEN employment = 'temporary'
                        AND (left_at AT TIME ZONE 'UTC')::date >= engagement_ends_on
                       THEN 'ended_as_planned'
                   ELSE 'left'
               END AS separation
        FROM (
            SELECT *, engagement_ended_at IS NOT NULL
                      AND (left_at IS NULL OR engagement_ended_at <= left_at) AS ended_first
            FROM {schema}.agent_employment
            WHERE hired_at IS NOT NULL
        ) AS employment_facts
    ) AS separations
)
"""

_AGENT_COHORTS = (
    "WITH "
    + _AGENT_FACTS
    + """
, cohorts AS (
    SELECT agent_id, employment, separated_at,
           date_trunc('month', hired_at AT TIME ZONE 'UTC') AS cohort_month
    FROM agent_facts
)
SELECT cohorts.cohort_month::date AS cohort_month,
       cohorts.employment,
       grid.month::date AS month,
       count(*) AS hired,
       count(*) FILTER (
           WHERE cohorts.separated_at IS NULL
              OR cohorts.separated_at >= (grid.month + interval '1 month') AT TIME ZONE 'UTC'
       ) AS still_employed
FROM cohorts
CROSS JOIN LATERAL generate_series(
    cohorts.cohort_month, date_trunc('month', %(as_of)s AT TIME ZONE 'UTC'), interval '1 month'
) AS grid(month)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""
)

_AGENT_TURNOVER = (
    "WITH "
    + _AGENT_FACTS
    + """
, months AS (
    SELECT grid.month AS month,
           grid.month AT TIME ZONE 'UTC' AS starts_at,
           (grid.month + interval '1 month') AT TIME ZONE 'UTC' AS ends_at
    FROM generate_series(
        (SELECT date_trunc('month', min(hired_at) AT TIME ZONE 'UTC') FROM agent_facts),
        date_trunc('month', %(as_of)s AT TIME ZONE 'UTC'),
        interval '1 month'
    ) AS grid(month)
), kinds AS (
    SELECT unnest(ARRAY['regular', 'temporary']) AS employment
)
SELECT months.month::date AS month,
       kinds.employment,
       count(f.agent_id) FILTER (
           WHERE f.hired_at < months.starts_at
             AND (f.separated_at IS NULL OR f.separated_at >= months.starts_at)
       ) AS headcount_start,
       count(f.agent_id) FILTER (
           WHERE f.hired_at < months.ends_at
             AND (f.separated_at IS NULL OR f.separated_at >= months.ends_at)
       ) AS headcount_end,
       count(f.agent_id) FILTER (
           WHERE f.hired_at >= months.starts_at AND f.hired_at < months.ends_at
       ) AS hires,
       count(f.agent_id) FILTER (
           WHERE f.counts_as_turnover
             AND f.separated_at >= months.starts_at AND f.separated_at < months.ends_at
       ) AS leavers,
       count(f.agent_id) FILTER (
           WHERE f.separation = 'ended_as_planned' AND f.employment = 'temporary'
             AND f.separated_at >= months.starts_at AND f.separated_at < months.ends_at
       ) AS planned_ends
FROM months
CROSS JOIN kinds
LEFT JOIN agent_facts AS f ON f.employment = kinds.employment
GROUP BY 1, 2
ORDER BY 1, 2
"""
)


# --- named reports --------------------------------------------------------------------


def _register(
    name: str,
    query: Callable[[psycopg.Connection, str], list[Row]],
    period: str,
    cohort: Callable[[Row], str] | None = None,
    share: str | None = None,
    size: str | None = None,
) -> None:
    """Register `query` as the named report `name`, filtered on the month column `period`.

    Rates become percentages with two decimals in columns named *_percent, because the
    report table prints floats with one decimal. A cohort report also gets a `cohort`
    label and a `share` column (0 to 1, the column `share` of the query), the columns
    that the pipeline's heatmaps and the pivot layout read. `size` names its column of
    cohort sizes for the pivot layout.
    """

    @register_report(name, pivot_size_column=size)
    def report(conn: psycopg.Connection, settings: Settings, filters: ReportFilters) -> ReportResult:
        if filters.department is not None:
            raise ValueError(f"the {name} report has no department breakdown; run it without --department")
        rows = [
            row
            for row in query(conn, settings.projection_schema(_GROUP))
            if _overlaps(row[period], filters.date_from, filters.date_to)
        ]
        shaped = [_report_row(row, cohort, share) for row in rows]
        if not shaped:
            return ReportResult(columns=[], rows=[])
        return ReportResult(columns=list(shaped[0]), rows=[tuple(row.values()) for row in shaped])

    report.__doc__ = query.__doc__


def _report_row(row: Row, cohort: Callable[[Row], str] | None, share: str | None) -> Row:
    shaped: Row = {"cohort": cohort(row)} if cohort else {}
    for column, value in row.items():
        if column.endswith(("_share", "_rate")):
            if column == share:
                shaped["share"] = value
            shaped[f"{column}_percent"] = None if value is None else round(value * 100, 2)
        else:
            shaped[column] = value
    return shaped


def _overlaps(month: date, date_from: date | None, date_to: date | None) -> bool:
    """Return whether the calendar month of `month` has a day in the inclusive range."""
    if date_to is not None and month > date_to:
        return False
    return date_from is None or add_months(month, 1) > date_from


# The retention projection's group name, written out because projections.retention
# imports this module to register the reports.
_GROUP = "retention"

_register(
    "customer-cohorts",
    customer_cohorts,
    "cohort_month",
    cohort=lambda row: f"{row['cohort_month']:%Y-%m}",
    share="active_share",
    size="cohort_customers",
)
_register("customer-retention", customer_retention, "month")
_register("repeat-contacts", repeat_contacts, "month")
# Regular and temporary agents of one hire month are two cohorts, so each gets a row
# of its own in the heatmap.
_register(
    "agent-cohorts",
    agent_cohorts,
    "cohort_month",
    cohort=lambda row: f"{row['cohort_month']:%Y-%m} {row['employment']}",
    share="still_employed_share",
    size="hired",
)
_register("agent-turnover", agent_turnover, "month")
