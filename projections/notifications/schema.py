"""Tables of the notifications schema (state, deadlines, outbox) and of the dispatcher's delivery schema."""

from __future__ import annotations

import psycopg
from psycopg import sql

# Outbox statuses. Only the dispatcher moves a message out of "pending", except that
# the projection withdraws a pending message whose deadline a late event cancelled.
# The final statuses are also kept in the delivery schema (see _DELIVERY_DDL).
PENDING = "pending"
SENT = "sent"
FAILED = "failed"  # the last retry failed, or the error was permanent
CANCELLED = "cancelled"  # the recipient was forgotten before the message was sent
WITHDRAWN = "withdrawn"  # the deadline behind it turned out to be met in event time
EXPIRED = "expired"  # fired longer ago than the delivery policy's max_age

_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};

-- Latest state of each aggregate that rules read. Keyed by aggregate id, and events of
-- one aggregate arrive in order, so the rows do not depend on how topics interleave.
CREATE TABLE IF NOT EXISTS {schema}.tickets (
    ticket_id         uuid PRIMARY KEY,
    customer_id       uuid,
    subject           text,
    department        text,
    priority          text,
    channel           text,
    status            text,
    assigned_agent_id uuid,
    opened_at         timestamptz,
    last_version      bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS {schema}.agents (
    agent_id           uuid PRIMARY KEY,
    name               text,
    email              text,
    employment         text,
    engagement_ends_on date,
    departments        text[] NOT NULL DEFAULT '{{}}',
    status             text,
    last_version       bigint NOT NULL
);

-- Name, e-mail address and phone are erased when the customer is forgotten.
CREATE TABLE IF NOT EXISTS {schema}.customers (
    customer_id  uuid PRIMARY KEY,
    name         text,
    email        text,
    phone        text,
    language     text,
    forgotten    boolean NOT NULL DEFAULT false,
    last_version bigint NOT NULL
);

-- One timer per rule with a deadline trigger and per event that started it.
-- status: scheduled, cancelled (met before due_at), fired (notification written),
-- skipped (due, but the rule's conditions did not hold).
CREATE TABLE IF NOT EXISTS {schema}.deadlines (
    rule           text NOT NULL,
    aggregate_id   uuid NOT NULL,
    start_version  bigint NOT NULL,
    deadline       text NOT NULL,
    due_at         timestamptz NOT NULL,
    delay_seconds  bigint NOT NULL,
    status         text NOT NULL DEFAULT 'scheduled',
    closed_at      timestamptz,
    closed_by      text,
    PRIMARY KEY (rule, aggregate_id, start_version)
);
CREATE INDEX IF NOT EXISTS deadlines_due ON {schema}.deadlines (due_at) WHERE status = 'scheduled';
CREATE INDEX IF NOT EXISTS deadlines_aggregate ON {schema}.deadlines (aggregate_id, deadline);

-- Messages to send. The projection inserts a row once per dedup_key (rule, aggregate,
-- version or deadline, recipient); the dispatcher sends it and records the outcome.
-- recipient is a reference such as "agent:<uuid>" or "department:billing" that the
-- dispatcher resolves to an address when it sends.
CREATE TABLE IF NOT EXISTS {schema}.outbox (
    id              bigserial PRIMARY KEY,
    dedup_key       text NOT NULL UNIQUE,
    rule            text NOT NULL,
    channel         text NOT NULL,
    recipient       text NOT NULL,
    aggregate_id    uuid NOT NULL,
    source_version  bigint NOT NULL,
    context         jsonb NOT NULL,
    fired_at        timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL DEFAULT 'pending',
    attempt_count   integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    last_error      text
);
CREATE INDEX IF NOT EXISTS outbox_due ON {schema}.outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_aggregate ON {schema}.outbox (aggregate_id);

"""


def create_tables(conn: psycopg.Connection, schema: str) -> None:
    """Create the schema and its tables if they do not exist."""
    conn.execute(sql.SQL(_DDL).format(schema=sql.Identifier(schema)))


# The dispatcher's own records live in a schema of their own, "<schema>_delivery".
# A replay rebuilds the projection schema from the topics and swaps it in, with every
# message pending again. The dispatcher then finds the outcome of each dedup key here
# instead of sending the message a second time.
_DELIVERY_DDL = """
CREATE SCHEMA IF NOT EXISTS {delivery};

CREATE TABLE IF NOT EXISTS {delivery}.delivery_attempts (
    dedup_key    text NOT NULL,
    attempt      integer NOT NULL,
    attempted_at timestamptz NOT NULL,
    outcome      text NOT NULL,
    destination  text,
    error        text,
    PRIMARY KEY (dedup_key, attempt)
);

CREATE TABLE IF NOT EXISTS {delivery}.delivery_outcomes (
    dedup_key     text PRIMARY KEY,
    status        text NOT NULL,
    decided_at    timestamptz NOT NULL,
    attempt_count integer NOT NULL,
    sent_at       timestamptz,
    last_error    text
);
"""


def delivery_schema(schema: str) -> str:
    """Return the name of the dispatcher's schema that belongs to the notifications schema `schema`."""
    return f"{schema}_delivery"


def create_delivery_tables(conn: psycopg.Connection, schema: str) -> None:
    """Create the dispatcher's schema and tables for the notifications schema `schema` if they do not exist."""
    conn.execute(sql.SQL(_DELIVERY_DDL).format(delivery=sql.Identifier(delivery_schema(schema))))
