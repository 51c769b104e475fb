"""Latest state of tickets, agents and customers, as the rules and the dispatcher read it."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ticketing.stream.decoded import DecodedEvent

_TICKET_STATUS_AFTER = {
    "Ticket.MovedToPending": "pending",
    "Ticket.PutOnHold": "on_hold",
    "Ticket.Resumed": "open",
    "Ticket.Resolved": "resolved",
    "Ticket.Reopened": "open",
    "Ticket.Closed": "closed",
    "Ticket.MergedInto": "merged",
}


def apply(conn: psycopg.Connection, schema: sql.Identifier, event: DecodedEvent) -> None:
    """Update the state row of the event's aggregate."""
    if event.aggregate_type == "Ticket":
        _apply_ticket(conn, schema, event)
    elif event.aggregate_type == "Agent":
        _apply_agent(conn, schema, event)
    elif event.aggregate_type == "Customer":
        _apply_customer(conn, schema, event)


def load(conn: psycopg.Connection, schema: sql.Identifier, aggregate_type: str, aggregate_id: str) -> dict[str, Any] | None:
    """Return the state row of one aggregate, or None when none of its events has arrived."""
    table, key = {"Ticket": ("tickets", "ticket_id"), "Agent": ("agents", "agent_id"), "Customer": ("customers", "customer_id")}[
        aggregate_type
    ]
    query = sql.SQL("SELECT * FROM {}.{} WHERE {} = %s").format(schema, sql.Identifier(table), sql.Identifier(key))
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query, (aggregate_id,)).fetchone()


def _apply_ticket(conn: psycopg.Connection, schema: sql.Identifier, event: DecodedEvent) -> None:
    fields = event.fields
    if event.event_type == "Ticket.Opened":
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.tickets (ticket_id, customer_id, subject, department, priority, channel, "
                "status, opened_at, last_version) VALUES (%s, %s, %s, %s, %s, %s, 'open', %s, %s) "
                "ON CONFLICT (ticket_id) DO NOTHING"
            ).format(schema),
            (
                event.aggregate_id,
                fields["customer_id"],
                fields["subject"],
                fields["department"],
                str(fields["priority"]),
                str(fields["channel"]),
                event.occurred_at,
                event.aggregate_version,
            ),
        )
        return

    changes: dict[str, Any] = {}
    if event.event_type == "Ticket.PriorityChanged":
        changes["priority"] = str(fields["priority"])
    elif event.event_type == "Ticket.Assigned":
        changes["assigned_agent_id"] = fields["agent_id"]
    elif event.event_type == "Ticket.Transferred":
        changes["department"] = fields["department"]
    if event.event_type in _TICKET_STATUS_AFTER:
        changes["status"] = _TICKET_STATUS_AFTER[event.event_type]
    _update(conn, schema, "tickets", "ticket_id", event, changes)


def _apply_agent(conn: psycopg.Connection, schema: sql.Identifier, event: DecodedEvent) -> None:
    fields = event.fields
    if event.event_type == "Agent.Hired":
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.agents (agent_id, name, email, employment, engagement_ends_on, departments, "
                "status, last_version) VALUES (%s, %s, %s, %s, %s, %s, 'employed', %s) "
                "ON CONFLICT (agent_id) DO NOTHING"
            ).format(schema),
            (
                event.aggregate_id,
                fields["name"],
                fields["email"],
                str(fields["employment"]),
                fields.get("engagement_ends_on"),
                list(fields.get("departments") or []),
                event.aggregate_version,
            ),
        )
        return

    changes: dict[str, Any] = {}
    if event.event_type == "Agent.DepartmentsChanged":
        changes["departments"] = list(fields["departments"])
    elif event.event_type in ("Agent.Left", "Agent.EngagementEnded"):
        changes["status"] = "left"
    _update(conn, schema, "agents", "agent_id", event, changes)


def _apply_customer(conn: psycopg.Connection, schema: sql.Identifier, event: DecodedEvent) -> None:
    fields = event.fields
    if event.event_type == "Customer.Registered":
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.customers (customer_id, name, email, phone, language, last_version) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (customer_id) DO NOTHING"
            ).format(schema),
            (
                event.aggregate_id,
                fields["name"],
                fields["email"],
                fields.get("phone"),
                fields.get("language") or "en",
                event.aggregate_version,
            ),
        )
        return

    changes: dict[str, Any] = {}
    if event.event_type == "Customer.ContactDetailsChanged":
        # None means "unchanged" in this event.
        changes = {key: fields[key] for key in ("name", "email", "phone") if fields.get(key) is not None}
    elif event.event_type == "Customer.Forgotten":
        changes = {"name": None, "email": None, "phone": None, "forgotten": True}
    _update(conn, schema, "customers", "customer_id", event, changes)


def _update(
    conn: psycopg.Connection,
    schema: sql.Identifier,
    table: str,
    key: str,
    event: DecodedEvent,
    changes: dict[str, Any],
) -> None:
    assignments = [sql.SQL("{} = %s").format(sql.Identifier(column)) for column in changes]
    assignments.append(sql.SQL("last_version = %s"))
    conn.execute(
        sql.SQL("UPDATE {}.{} SET {} WHERE {} = %s").format(
            schema, sql.Identifier(table), sql.SQL(", ").join(assignments), sql.Identifier(key)
        ),
        (*changes.values(), event.aggregate_version, event.aggregate_id),
    )
