"""SQL of the reports schema: figures per department, agent and channel, and agent time.

Everything is computed from the normalized tables at query time, which keeps the tables
order-independent. The figures query is generated per dimension and period, with or
without a department filter and a date range. So `projections.report_queries` filters
before aggregating, because a median or percentile cannot be re-aggregated after the
fact: a week's median comes from the week's events, never from seven daily medians.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from psycopg import sql

if TYPE_CHECKING:
    import psycopg

PAUSE_REASONS = ("break", "lunch", "meeting", "training", "other")


class Period(str, Enum):
    """Length of the period that one report row covers."""

    day = "day"
    week = "week"
    month = "month"
    all = "all"


# The key of the period that contains the UTC day in column `day`. Weeks start on
# Monday, as date_trunc('week') and ISO 8601 have them. Under `all` every day has the
# same key, so the whole date range is one period.
_PERIOD_KEYS = {
    Period.day: "day",
    Period.week: "date_trunc('week', day)::date",
    Period.month: "date_trunc('month', day)::date",
    Period.all: "DATE 'epoch'",
}

_DATE_RANGE = (
    "(%(date_from)s::date IS NULL OR day >= %(date_from)s::date) "
    "AND (%(date_to)s::date IS NULL OR day <= %(date_to)s::date)"
)


@dataclass(frozen=True)
class Dimension:
    """Grouping of one daily view: `counted_key` for event counts, `backlog_key` for the backlog."""

    name: str
    counted_key: str
    backlog_key: str


# Agent keys use '' for "no agent", because FULL JOIN needs an equality that matches
# NULL to NULL; the views turn '' back into NULL.
DIMENSIONS = {
    "department": Dimension("department", "h.department", "h.department"),
    "channel": Dimension("channel", "h.channel", "h.channel"),
    "agent": Dimension("agent_id", "coalesce(h.credited_agent_id, '')", "coalesce(h.assigned_agent_id, '')"),
}

DAILY_COLUMNS = (
    "opened",
    "resolved",
    "closed",
    "reopened",
    "backlog",
    "first_response_count",
    "first_response_mean_seconds",
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_count",
    "resolution_mean_seconds",
    "resolution_median_seconds",
    "resolution_p90_seconds",
    "one_touch_resolutions",
    "callbacks_requested",
    "callbacks_completed",
    "callbacks_missed",
    "ratings",
    "average_rating",
)

_FIGURES = """
WITH history AS (
    SELECT h.*, lead(h.occurred_at) OVER (PARTITION BY h.ticket_id ORDER BY h.version) AS next_occurred_at
    FROM {schema}.ticket_history h
),
measures AS (
    SELECT
        (h.occurred_at AT TIME ZONE 'UTC')::date AS day,
        {counted_key} AS key,
        h.event_type,
        h.counted_reopen,
        CASE WHEN h.first_response THEN h.seconds_since_opened END AS first_response_seconds,
        CASE WHEN h.version = t.resolved_version THEN h.seconds_since_opened END AS resolution_seconds,
        (h.version = t.resolved_version AND h.public_replies = 1) AS one_touch,
        CASE WHEN h.version = t.rating_version THEN h.score END AS rating
    FROM history h JOIN {schema}.tickets t USING (ticket_id)
    WHERE {department_condition}
),
counts AS (
    SELECT
        {period_key} AS period_key,
        key,
        count(*) FILTER (WHERE event_type = 'Ticket.Opened') AS opened,
        count(*) FILTER (WHERE event_type = 'Ticket.Resolved') AS resolved,
        count(*) FILTER (WHERE event_type = 'Ticket.Closed') AS closed,
        count(*) FILTER (WHERE counted_reopen) AS reopened,
        count(first_response_seconds) AS first_response_count,
        avg(first_response_seconds) AS first_response_mean_seconds,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response_seconds) AS first_response_median_seconds,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY first_response_seconds) AS first_response_p90_seconds,
        count(resolution_seconds) AS resolution_count,
        avg(resolution_seconds) AS resolution_mean_seconds,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_seconds) AS resolution_median_seconds,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution_seconds) AS resolution_p90_seconds,
        count(*) FILTER (WHERE one_touch) AS one_touch_resolutions,
        count(*) FILTER (WHERE event_type = 'Ticket.CallbackRequested') AS callbacks_requested,
        count(*) FILTER (WHERE event_type = 'Ticket.CallbackCompleted') AS callbacks_completed,
        count(*) FILTER (WHERE event_type = 'Ticket.CallbackMissed') AS callbacks_missed,
        count(rating) AS ratings,
        avg(rating)::double precision AS average_rating
    FROM measures
    WHERE {date_range}
    GROUP BY 1, key
),
-- The backlog changes by +1 when a state in the backlog starts and by -1 when the
-- ticket's next history row replaces it; the running sum per key is the backlog at
-- the end of each day. It runs over the whole history, also before the date range,
-- because tickets opened earlier are still in the backlog.
changes AS (
    SELECT day, key, sum(delta) AS delta
    FROM (
        SELECT (h.occurred_at AT TIME ZONE 'UTC')::date AS day, {backlog_key} AS key, 1 AS delta
        FROM history h WHERE h.in_backlog AND {department_condition}
        UNION ALL
        SELECT (h.next_occurred_at AT TIME ZONE 'UTC')::date, {backlog_key}, -1
        FROM history h WHERE h.in_backlog AND h.next_occurred_at IS NOT NULL AND {department_condition}
    ) AS deltas
    GROUP BY day, key
),
-- The backlog is reported for every day up to the group's clock, also for days on
-- which no ticket event happened.
bounds AS (
    SELECT min(day) AS first_day, max(day) AS last_day
    FROM (
        SELECT day FROM measures
        UNION ALL SELECT day FROM changes
        UNION ALL SELECT (clock AT TIME ZONE 'UTC')::date FROM {schema}.report_clock
    ) AS days
),
days AS (
    SELECT series::date AS day
    FROM bounds CROSS JOIN generate_series(bounds.first_day, bounds.last_day, interval '1 day') AS series
),
-- A period covers its days inside the date range and inside the reported days, so the
-- first and the last period can be shorter than a calendar week or month.
periods AS (
    SELECT {period_key} AS period_key, min(day) AS first_day, max(day) AS last_day
    FROM days
    WHERE {date_range}
    GROUP BY 1
),
grid AS (
    SELECT days.day, keys.key
    FROM days CROSS JOIN (SELECT DISTINCT key FROM changes) AS keys
),
daily_backlog AS (
    SELECT grid.day, grid.key, sum(coalesce(changes.delta, 0)) OVER (PARTITION BY grid.key ORDER BY grid.day) AS backlog
    FROM grid LEFT JOIN changes USING (day, key)
),
-- The backlog of a period is the backlog at the end of its last day.
backlog AS (
    SELECT periods.period_key, daily_backlog.key, daily_backlog.backlog
    FROM periods JOIN daily_backlog ON daily_backlog.day = periods.last_day
)
SELECT
    {period_columns},
    {key_output} AS {key_name},
    coalesce(counts.opened, 0) AS opened,
    coalesce(counts.resolved, 0) AS resolved,
    coalesce(counts.closed, 0) AS closed,
    coalesce(counts.reopened, 0) AS reopened,
    coalesce(backlog.backlog, 0)::bigint AS backlog,
    coalesce(counts.first_response_count, 0) AS first_response_count,
    counts.first_response_mean_seconds,
    counts.first_response_median_seconds,
    counts.first_response_p90_seconds,
    coalesce(counts.resolution_count, 0) AS resolution_count,
    counts.resolution_mean_seconds,
    counts.resolution_median_seconds,
    counts.resolution_p90_seconds,
    coalesce(counts.one_touch_resolutions, 0) AS one_touch_resolutions,
    coalesce(counts.callbacks_requested, 0) AS callbacks_requested,
    coalesce(counts.callbacks_completed, 0) AS callbacks_completed,
    coalesce(counts.callbacks_missed, 0) AS callbacks_missed,
    coalesce(counts.ratings, 0) AS ratings,
    counts.average_rating
FROM counts FULL JOIN backlog USING (period_key, key)
JOIN periods USING (period_key)
WHERE coalesce(backlog.backlog, 0) <> 0
   OR coalesce(counts.opened + counts.resolved + counts.closed + counts.reopened + counts.first_response_count
               + counts.resolution_count + counts.callbacks_requested + counts.callbacks_completed
               + counts.callbacks_missed + counts.ratings, 0) > 0
"""

_FIGURES_AGENTS = """
SELECT {period_columns}, figures.agent_id, agents.name AS agent_name,
       coalesce(agents.employment = 'temporary', false) AS temporary,
       {columns}
FROM ({figures}) AS figures LEFT JOIN {schema}.agents agents USING (agent_id)
"""

_AGENT_TIME_PIECES = """
CREATE VIEW {schema}.agent_time_pieces AS
WITH clock AS (SELECT max(clock) AS clock FROM {schema}.report_clock),
spans AS (
    SELECT i.agent_id, i.kind, i.reason,
           i.started_at AT TIME ZONE 'UTC' AS started,
           coalesce(i.ended_at, clock.clock) AT TIME ZONE 'UTC' AS ended
    FROM {schema}.agent_intervals i CROSS JOIN clock
),
pieces AS (
    SELECT spans.agent_id, spans.kind, spans.reason, day_start::date AS day,
           extract(epoch FROM least(spans.ended, day_start + interval '1 day') - greatest(spans.started, day_start))
               ::double precision AS seconds
    FROM spans
    CROSS JOIN LATERAL generate_series(date_trunc('day', spans.started), spans.ended, interval '1 day') AS day_start
)
SELECT agent_id, kind, reason, day, seconds FROM pieces WHERE seconds > 0
"""

_AGENT_TIME = """
SELECT {period_columns}, p.agent_id, a.name AS agent_name, coalesce(a.employment = 'temporary', false) AS temporary,
       coalesce(sum(p.seconds) FILTER (WHERE p.kind = 'online'), 0) AS online_seconds,
       coalesce(sum(p.seconds) FILTER (WHERE p.kind = 'paused'), 0) AS paused_seconds,
       {reason_columns},
       coalesce(sum(p.seconds) FILTER (WHERE p.kind = 'online'), 0)
           - coalesce(sum(p.seconds) FILTER (WHERE p.kind = 'paused'), 0) AS work_seconds
FROM (
    SELECT pieces.*, {period_key} AS period_key
    FROM {schema}.agent_time_pieces pieces
    WHERE {date_range}
) AS p
LEFT JOIN {schema}.agents a USING (agent_id)
WHERE {department_condition}
GROUP BY p.period_key, p.agent_id, a.name, a.employment
"""

# A period of agent time runs from the first to the last day in it on which any agent
# of the report has time, so a period cut by the date range or by the clock shows it.
_AGENT_TIME_PERIOD = (
    "min(min(p.day)) OVER (PARTITION BY p.period_key) AS period_start, "
    "max(max(p.day)) OVER (PARTITION BY p.period_key) AS period_end"
)

VIEWS = ("daily_departments", "daily_agents", "daily_channels", "agent_time_daily", "agent_time_pieces")


def figures_query(
    schema: str, dimension: str, period: Period, *, department_filter: bool, date_range: bool
) -> sql.Composed:
    """Return the figures per period and `dimension`.

    With `department_filter` the query takes %(department)s, and with `date_range` it
    takes %(date_from)s and %(date_to)s (inclusive UTC days, NULL for no limit). Rows of
    Period.day start with a `day` column, all others with `period_start` and
    `period_end`, the first and last day that the row covers.
    """
    spec = DIMENSIONS[dimension]
    condition = sql.SQL("h.department = %(department)s" if department_filter else "true")
    key_output = "nullif(key, '')" if dimension == "agent" else "key"
    if period is Period.day:
        leading_columns = "periods.first_day AS day"
    else:
        leading_columns = "periods.first_day AS period_start, periods.last_day AS period_end"
    query = sql.SQL(_FIGURES).format(
        schema=sql.Identifier(schema),
        counted_key=sql.SQL(spec.counted_key),
        backlog_key=sql.SQL(spec.backlog_key),
        department_condition=condition,
        period_key=sql.SQL(_PERIOD_KEYS[period]),
        date_range=sql.SQL(_DATE_RANGE if date_range else "true"),
        period_columns=sql.SQL(leading_columns),
        key_output=sql.SQL(key_output),
        key_name=sql.Identifier(spec.name),
    )
    if dimension != "agent":
        return query
    return sql.SQL(_FIGURES_AGENTS).format(
        schema=sql.Identifier(schema),
        figures=query,
        period_columns=sql.SQL(", ").join(
            sql.SQL("figures.{}").format(sql.Identifier(column)) for column in period_columns(period)
        ),
        columns=sql.SQL(", ").join(sql.SQL("figures.{}").format(sql.Identifier(column)) for column in DAILY_COLUMNS),
    )


def daily_query(schema: str, dimension: str, *, department_filter: bool) -> sql.Composed:
    """Return the daily figures per `dimension` over all days. With `department_filter`, it takes %(department)s."""
    return figures_query(schema, dimension, Period.day, department_filter=department_filter, date_range=False)


def agent_time_query(
    schema: str, period: Period = Period.day, *, department_filter: bool, date_range: bool = False
) -> sql.Composed:
    """Return time per agent and period. With `department_filter`, only agents of %(department)s count.

    `date_range` adds the %(date_from)s and %(date_to)s parameters as in figures_query.
    Seconds are sums, so a period's time is the sum of its days.
    """
    reason_columns = sql.SQL(", ").join(
        sql.SQL("coalesce(sum(p.seconds) FILTER (WHERE p.kind = 'paused' AND p.reason = {reason}), 0) AS {column}").format(
            reason=sql.Literal(reason), column=sql.Identifier(f"paused_{reason}_seconds")
        )
        for reason in PAUSE_REASONS
    )
    condition = sql.SQL("%(department)s = ANY(a.departments)" if department_filter else "true")
    if period is Period.day:
        columns = sql.SQL("p.period_key AS day")
    else:
        columns = sql.SQL(_AGENT_TIME_PERIOD)
    return sql.SQL(_AGENT_TIME).format(
        schema=sql.Identifier(schema),
        period_columns=columns,
        period_key=sql.SQL(_PERIOD_KEYS[period]),
        date_range=sql.SQL(_DATE_RANGE if date_range else "true"),
        reason_columns=reason_columns,
        department_condition=condition,
    )


def period_columns(period: Period) -> tuple[str, ...]:
    """Return the names of the leading columns that give the days a row covers."""
    return ("day",) if period is Period.day else ("period_start", "period_end")


def create_views(conn: psycopg.Connection, schema: str) -> None:
    """Recreate every view, so a changed definition takes effect when a group process starts."""
    identifier = sql.Identifier(schema)
    for view in VIEWS:
        conn.execute(sql.SQL("DROP VIEW IF EXISTS {}.{} CASCADE").format(identifier, sql.Identifier(view)))

    for view, dimension in (
        ("daily_departments", "department"),
        ("daily_agents", "agent"),
        ("daily_channels", "channel"),
    ):
        conn.execute(
            sql.SQL("CREATE VIEW {}.{} AS {}").format(
                identifier, sql.Identifier(view), daily_query(schema, dimension, department_filter=False)
            )
        )
    conn.execute(sql.SQL(_AGENT_TIME_PIECES).format(schema=identifier))
    conn.execute(
        sql.SQL("CREATE VIEW {}.agent_time_daily AS {}").format(
            identifier, agent_time_query(schema, department_filter=False)
        )
    )
