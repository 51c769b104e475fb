"""Write fired notifications to the outbox, inside the consumer's batch transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

import psycopg
import structlog
from psycopg import sql
from psycopg.types.json import Jsonb

from projections.notifications.model import Rule

log = structlog.get_logger(__name__)

# Sources of an outbox row, written before the version in its dedup key.
EVENT_SOURCE = "v"
DEADLINE_SOURCE = "deadline@v"


def recipient_reference(recipient: str, context: Mapping[str, Any]) -> str | None:
    """Return the reference stored in the outbox for one of a rule's recipients.

    The dispatcher turns the reference into an address when it sends, so a message
    whose agent or customer is not known yet is still written now, and written the
    same whatever order the topics arrived in. None means that the context has no value
    for the recipient, such as assigned_agent on a ticket without an agent.
    """
    if recipient.startswith("slack:"):
        return recipient
    if "@" in recipient:
        return f"email:{recipient}"
    if recipient == "admins":
        return "admins"

    source = {
        "assigned_agent": ("agent", "assigned_agent_id"),
        "agent": ("agent", "agent_id"),
        "customer": ("customer", "customer_id"),
        "department": ("department", "department"),
        "team_lead": ("team_lead", "department"),
    }[recipient]
    value = context.get(source[1])
    return f"{source[0]}:{value}" if value else None


def write(
    conn: psycopg.Connection,
    schema: sql.Identifier,
    rule: Rule,
    context: Mapping[str, Any],
    *,
    aggregate_id: str,
    source: str,
    source_version: int,
    fired_at: datetime,
) -> int:
    """Insert one outbox row per recipient of `rule`; return how many rows were new.

    `source` is EVENT_SOURCE or DEADLINE_SOURCE, so that the
    dedup key (rule, aggregate, source and version, recipient) of a redelivered event
    or a replayed batch matches the row already written.
    """
    written = 0
    for recipient in rule.recipients:
        reference = recipient_reference(recipient, context)
        if reference is None:
            log.warning(
                "notification has no recipient",
                rule=rule.name,
                recipient=recipient,
                aggregate_id=aggregate_id,
                version=source_version,
            )
            continue

        dedup_key = f"{rule.name}|{aggregate_id}|{source}{source_version}|{reference}"
        cursor = conn.execute(
            sql.SQL(
                "INSERT INTO {}.outbox (dedup_key, rule, channel, recipient, aggregate_id, source_version, "
                "context, fired_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (dedup_key) DO NOTHING"
            ).format(schema),
            (dedup_key, rule.name, rule.channel, reference, aggregate_id, source_version, Jsonb(dict(context)), fired_at),
        )
        written += cursor.rowcount
    return written


def take_back(conn: psycopg.Connection, schema: sql.Identifier, *, rule: str, aggregate_id: str, start_version: int) -> bool:
    """Delete the messages of a fired deadline if the dispatcher has not touched any of them yet.

    Return True when the deadline has no message left (so it can be scheduled again),
    False when one of them is already being sent or was sent.
    """
    prefix = _deadline_key_prefix(rule, aggregate_id, start_version)
    # FOR UPDATE waits while a dispatcher has a row locked to send it, and then reads the
    # committed outcome, so a message sent meanwhile is seen as sent and kept.
    messages = conn.execute(
        sql.SQL(
            "SELECT status, attempt_count FROM {}.outbox "
            "WHERE aggregate_id = %s AND starts_with(dedup_key, %s) FOR UPDATE"
        ).format(schema),
        (aggregate_id, prefix),
    ).fetchall()
    if any(status != "pending" or attempts > 0 for status, attempts in messages):
        return False
    conn.execute(
        sql.SQL("DELETE FROM {}.outbox WHERE aggregate_id = %s AND starts_with(dedup_key, %s)").format(schema),
        (aggregate_id, prefix),
    )
    return True


def withdraw(conn: psycopg.Connection, schema: sql.Identifier, *, rule: str, aggregate_id: str, start_version: int) -> None:
    """Mark as withdrawn the unsent messages of a deadline that a late event showed to be met.

    Messages already sent stay sent; the warning is all that can be done about them.
    """
    prefix = _deadline_key_prefix(rule, aggregate_id, start_version)
    withdrawn = conn.execute(
        sql.SQL(
            "UPDATE {}.outbox SET status = 'withdrawn', last_error = 'deadline met before it was due' "
            "WHERE aggregate_id = %s AND starts_with(dedup_key, %s) AND status = 'pending'"
        ).format(schema),
        (aggregate_id, prefix),
    ).rowcount
    log.warning(
        "deadline was met in event time but its notification had already been tried",
        rule=rule,
        aggregate_id=aggregate_id,
        start_version=start_version,
        withdrawn=withdrawn,
    )


def _deadline_key_prefix(rule: str, aggregate_id: str, start_version: int) -> str:
    return f"{rule}|{aggregate_id}|{DEADLINE_SOURCE}{start_version}|"
