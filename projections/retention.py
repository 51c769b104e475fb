"""Retention projection: normalized facts for customer and agent cohorts.

The projection stores one row per fact (a ticket opened, a resolution, an agent's hire
and separation) and computes every cohort and rate at query time in
`projections.retention_queries`. Each row is keyed by the aggregate that produced it,
and every upsert keeps the first value or the earliest time. So the tables come out
the same for any interleaving of the topics that keeps each aggregate's order.

Retention reads no customer events: a customer's cohort is the month of their first
ticket, so a ticket that arrives before its customer's `Customer.Registered` needs
nothing from it, and the schema stores no name, e-mail address or phone number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

import psycopg
import structlog
from psycopg import sql

from projections import retention_queries  # noqa: F401 (registers the named reports on import)
from ticketing.stream.decoded import DecodedEvent

log = structlog.get_logger(__name__)

GROUP = "retention"

_TABLES = """
CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE IF NOT EXISTS {schema}.ticket_openings (
    ticket_id   uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    opened_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_openings_customer_time
    ON {schema}.ticket_openings (customer_id, opened_at);
CREATE INDEX IF NOT EXISTS ticket_openings_time
    ON {schema}.ticket_openings (opened_at);

-- The earliest ticket of each customer. Ties on time go to the smaller ticket id, so
-- the row does not depend on which of two simultaneous tickets arrived first.
CREATE TABLE IF NOT EXISTS {schema}.customer_first_tickets (
    customer_id     uuid PRIMARY KEY,
    first_ticket_id uuid NOT NULL,
    first_opened_at timestamptz NOT NULL
);

-- One row per Ticket.Resolved: a reopened ticket that is resolved again has two.
CREATE TABLE IF NOT EXISTS {schema}.ticket_resolutions (
    ticket_id         uuid NOT NULL,
    aggregate_version bigint NOT NULL,
    resolved_at       timestamptz NOT NULL,
    resolution        text NOT NULL,
    PRIMARY KEY (ticket_id, aggregate_version)
);
CREATE INDEX IF NOT EXISTS ticket_resolutions_time
    ON {schema}.ticket_resolutions (resolved_at);

-- Hire and separation facts of each agent. Columns stay NULL until their event
-- arrives. Both separation events are kept, and the queries take the earlier one.
CREATE TABLE IF NOT EXISTS {schema}.agent_employment (
    agent_id            uuid PRIMARY KEY,
    hired_at            timestamptz,
    employment          text,
    engagement_ends_on  date,
    left_at             timestamptz,
    leaving_kind        text,
    engagement_ended_at timestamptz,
    ended_early         boolean
);

-- The group's clock (maximum occurred_at seen) as of the last batch, so that queries
-- know which months are complete without reading the wall clock.
CREATE TABLE IF NOT EXISTS {schema}.event_clock (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    as_of     timestamptz NOT NULL
);
"""


class RetentionProjection:
    """Projection of the "retention" consumer group (implements consumers.projection.Projection)."""

    group = GROUP
    topics = ("tickets", "agents")

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[[psycopg.Connection, sql.Identifier, DecodedEvent], None]] = {
            "Ticket.Opened": _record_ticket_opened,
            "Ticket.Resolved": _record_ticket_resolved,
            "Agent.Hired": _record_agent_hired,
            "Agent.Left": _record_agent_left,
            "Agent.EngagementEnded": _record_engagement_ended,
        }

    def create_tables(self, conn: psycopg.Connection, schema: str) -> None:
        conn.execute(sql.SQL(_TABLES).format(schema=sql.Identifier(schema)))
        log.debug("retention tables ready", schema=schema)

    def apply(self, conn: psycopg.Connection, schema: str, event: DecodedEvent) -> None:
        handler = self._handlers.get(event.event_type)
        if handler is not None:
            handler(conn, sql.Identifier(schema), event)

    def after_batch(self, conn: psycopg.Connection, schema: str, clock: datetime | None) -> None:
        # The runner passes None before the group has seen any event.
        if clock is None:
            return
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.event_clock (as_of) VALUES (%s) "
                "ON CONFLICT (singleton) DO UPDATE "
                "SET as_of = greatest(event_clock.as_of, EXCLUDED.as_of)"
            ).format(sql.Identifier(schema)),
            (clock,),
        )


def _record_ticket_opened(conn: psycopg.Connection, schema: sql.Identifier, event: DecodedEvent) -> None:
    customer_id = event.fields["customer_id"]
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.ticket_openings (ticket_id, customer_id, opened_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (ticket_id) DO NOTHING"
        ).format(schema),
        (event.aggregate_id, customer_id, event.occurred_at),
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {0}.customer_first_tickets AS first (customer_id, first_ticket_id, first_opened_at) "
            "VALUES (%s, %s, %s) "
            "ON CONFLICT (customer_id) DO UPDATE "
            "SET first_ticket_id = EXCLUDED.first_ticket_id, first_opened_at = EXCLUDED.first_opened_at "
            "WHERE (EXCLUDED.first_opened_at, EXCLUDED.first_ticket_id) "
            "    < (first.first_opened_at, first.first_ticket_id)"
        ).format(schema),
        (customer_id, event.aggregate_id, event.occurred_at),
    )


def _record_ticket_resolved(conn: psycopg.Connection, schema: sql.Identifier, event: DecodedEvent) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.ticket_resolutions (ticket_id, aggregate_version, resolved_at, resolution) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (ticket_id, aggregate_version) DO NOTHING"
        ).format(schema),
        (event.aggregate_id, event.aggregate_version, event.occurred_at, str(event.fields["resolution"])),
    )


def _record_agent_hired(conn: psycopg.Connection, schema: sql.Identifier, event: DecodedEvent) -> None:
    fields = event.fields
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.agent_employment AS agent (agent_id, hired_at, employment, engagement_ends_on) "
            "VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (agent_id) DO UPDATE SET "
            "    hired_at = coalesce(agent.hired_at, EXCLUDED.hired_at), "
            "    employment = coalesce(agent.employment, EXCLUDED.employment), "
            "    engagement_ends_on = coalesce(agent.engagement_ends_on, EXCLUDED.engagement_ends_on)"
        ).format(schema),
        (event.aggregate_id, event.occurred_at, str(fields["employment"]), fields.get("engagement_ends_on")),
    )


def _record_agent_left(conn: psycopg.Connection, schema: sql.Identifier, event: DecodedEvent) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.agent_employment AS agent (agent_id, left_at, leaving_kind) VALUES (%s, %s, %s) "
            "ON CONFLICT (agent_id) DO UPDATE SET "
            "    left_at = coalesce(agent.left_at, EXCLUDED.left_at), "
            "    leaving_kind = coalesce(agent.leaving_kind, EXCLUDED.leaving_kind)"
        ).format(schema),
        (event.aggregate_id, event.occurred_at, str(event.fields["kind"])),
    )


def _record_engagement_ended(conn: psycopg.Connection, schema: sql.Identifier, event: DecodedEvent) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.agent_employment AS agent (agent_id, engagement_ended_at, ended_early) "
            "VALUES (%s, %s, %s) "
            "ON CONFLICT (agent_id) DO UPDATE SET "
            "    engagement_ended_at = coalesce(agent.engagement_ended_at, EXCLUDED.engagement_ended_at), "
            "    ended_early = coalesce(agent.ended_early, EXCLUDED.ended_early)"
        ).format(schema),
        (event.aggregate_id, event.occurred_at, bool(event.fields["ended_early"])),
    )


PROJECTION = RetentionProjection()
