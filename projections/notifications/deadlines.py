"""Timers of the rules with a deadline trigger: start, move, cancel and fire them in event time.

A deadline is met when an event that cancels it occurred strictly before `due_at`,
whatever the order of arrival. It fires in two ways:

- when a later event of the same aggregate occurred at or after `due_at`: the
  aggregate's own history then proves that nothing met it in time, and the message
  shows the state before that event;
- in after_batch, when the group's clock minus the allowed lateness passes `due_at`.
  The clock comes from every topic, so events of this aggregate that occurred before
  `due_at` may still be on their way. When one arrives, `reopen_premature` deletes the
  untried message and schedules the deadline again, so it fires later with the full
  state, or is cancelled. The tables then end up as if the events had arrived in time
  order. Only a message that the dispatcher has already tried stays, and a cancelling
  event marks it withdrawn if it is still unsent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping

import psycopg
import structlog
from psycopg import sql
from psycopg.rows import dict_row

from projections.notifications import outbox, state
from projections.notifications.context import deadline_context, engagement_end
from projections.notifications.model import DeadlineTrigger, RuleSet
from ticketing.stream.decoded import DecodedEvent

log = structlog.get_logger(__name__)

_CANCELLED_BY: dict[str, tuple[str, ...]] = {
    "Ticket.CustomerReplied": ("customer_reply",),
    "Ticket.Resumed": ("customer_reply",),
    "Ticket.PutOnHold": ("customer_reply",),
    "Ticket.Resolved": ("first_response", "customer_reply"),
    "Ticket.Closed": ("first_response", "customer_reply"),
    "Ticket.MergedInto": ("first_response", "customer_reply"),
    "Agent.Left": ("engagement_end",),
    "Agent.EngagementEnded": ("engagement_end",),
}


def on_event(
    conn: psycopg.Connection,
    schema: sql.Identifier,
    rules: RuleSet,
    event: DecodedEvent,
    current: Mapping[str, Any] | None,
) -> None:
    """Start, move or cancel the deadlines that `event` affects. `current` is the state after it."""
    kind = event.event_type
    if kind == "Ticket.Opened":
        _start(conn, schema, rules, "first_response", event, event.occurred_at, priority=str(event.fields["priority"]))
    elif kind == "Ticket.MovedToPending":
        _start(conn, schema, rules, "customer_reply", event, event.occurred_at)
    elif kind == "Agent.Hired":
        ends_on = event.fields.get("engagement_ends_on")
        if str(event.fields.get("employment")) == "temporary" and ends_on is not None:
            _start(conn, schema, rules, "engagement_end", event, engagement_end(ends_on), before=True)
    elif kind == "Ticket.PriorityChanged" and current is not None:
        _move_first_response(conn, schema, rules, event, current)
    elif kind == "Ticket.AgentReplied" and str(event.fields.get("visibility")) == "public":
        cancel(conn, schema, event, ("first_response",))

    if kind in _CANCELLED_BY:
        cancel(conn, schema, event, _CANCELLED_BY[kind])


def reopen_premature(conn: psycopg.Connection, schema: sql.Identifier, event: DecodedEvent) -> None:
    """Schedule again the deadlines of the event's aggregate that fired or were skipped before `event` occurred."""
    premature = conn.execute(
        sql.SQL(
            "SELECT rule, start_version FROM {}.deadlines "
            "WHERE aggregate_id = %s AND due_at > %s AND status IN ('fired', 'skipped') FOR UPDATE"
        ).format(schema),
        (event.aggregate_id, event.occurred_at),
    ).fetchall()
    for rule, start_version in premature:
        if not outbox.take_back(conn, schema, rule=rule, aggregate_id=event.aggregate_id, start_version=start_version):
            continue
        conn.execute(
            sql.SQL(
                "UPDATE {}.deadlines SET status = 'scheduled', closed_at = NULL, closed_by = NULL "
                "WHERE rule = %s AND aggregate_id = %s AND start_version = %s"
            ).format(schema),
            (rule, event.aggregate_id, start_version),
        )
        log.debug("premature deadline scheduled again", rule=rule, aggregate_id=event.aggregate_id)


def cancel(conn: psycopg.Connection, schema: sql.Identifier, event: DecodedEvent, deadlines: tuple[str, ...]) -> None:
    """Mark as met the deadlines of the event's aggregate that were due after the event occurred."""
    params = (event.aggregate_id, list(deadlines), event.occurred_at)

    # After reopen_premature, a fired deadline due after this event is one whose
    # message the dispatcher has already tried.
    already_tried = conn.execute(
        sql.SQL(
            "SELECT rule, start_version FROM {}.deadlines "
            "WHERE aggregate_id = %s AND deadline = ANY(%s) AND due_at > %s AND status = 'fired'"
        ).format(schema),
        params,
    ).fetchall()
    for rule, start_version in already_tried:
        outbox.withdraw(conn, schema, rule=rule, aggregate_id=event.aggregate_id, start_version=start_version)

    conn.execute(
        sql.SQL(
            "UPDATE {}.deadlines SET status = 'cancelled', closed_at = %s, closed_by = %s "
            "WHERE aggregate_id = %s AND deadline = ANY(%s) AND due_at > %s AND status IN ('scheduled', 'fired')"
        ).format(schema),
        (event.occurred_at, event.event_type, *params),
    )


def fire_due(
    conn: psycopg.Connection,
    schema: sql.Identifier,
    rules: RuleSet,
    until: datetime,
    aggregate_id: str | None = None,
) -> int:
    """Fire the scheduled deadlines due at or before `until`, of one aggregate or of all; return the count."""
    query = sql.SQL(
        "SELECT rule, aggregate_id::text, start_version, deadline, due_at, delay_seconds FROM {}.deadlines "
        "WHERE status = 'scheduled' AND due_at <= %s"
    ).format(schema)
    params: list[Any] = [until]
    if aggregate_id is not None:
        query += sql.SQL(" AND aggregate_id = %s")
        params.append(aggregate_id)
    query += sql.SQL(" ORDER BY due_at, rule, aggregate_id, start_version FOR UPDATE")

    with conn.cursor(row_factory=dict_row) as cursor:
        due = cursor.execute(query, params).fetchall()
    for deadline in due:
        _fire(conn, schema, rules, deadline)
    return len(due)


def _fire(conn: psycopg.Connection, schema: sql.Identifier, rules: RuleSet, deadline: dict[str, Any]) -> None:
    rule = rules.rule(deadline["rule"])
    if rule is None or not isinstance(rule.trigger, DeadlineTrigger):
        log.warning("deadline of a rule that is no longer in the rules file", rule=deadline["rule"], path=str(rules.path))
        _close(conn, schema, deadline, "skipped", "rule not in the rules file")
        return

    current = state.load(conn, schema, rule.trigger.aggregate_type, deadline["aggregate_id"])
    context = deadline_context(
        deadline["deadline"],
        rule.trigger.aggregate_type,
        deadline["aggregate_id"],
        deadline["start_version"],
        deadline["due_at"],
        deadline["delay_seconds"],
        current,
    )
    if not rule.matches(context):
        _close(conn, schema, deadline, "skipped", "conditions not met")
        return

    outbox.write(
        conn,
        schema,
        rule,
        context,
        aggregate_id=deadline["aggregate_id"],
        source=outbox.DEADLINE_SOURCE,
        source_version=deadline["start_version"],
        fired_at=deadline["due_at"],
    )
    _close(conn, schema, deadline, "fired", "due")


def _close(conn: psycopg.Connection, schema: sql.Identifier, deadline: dict[str, Any], status: str, reason: str) -> None:
    conn.execute(
        sql.SQL(
            "UPDATE {}.deadlines SET status = %s, closed_at = due_at, closed_by = %s "
            "WHERE rule = %s AND aggregate_id = %s AND start_version = %s"
        ).format(schema),
        (status, reason, deadline["rule"], deadline["aggregate_id"], deadline["start_version"]),
    )


def _start(
    conn: psycopg.Connection,
    schema: sql.Identifier,
    rules: RuleSet,
    deadline: str,
    event: DecodedEvent,
    reference: datetime,
    *,
    priority: str | None = None,
    before: bool = False,
) -> None:
    """Schedule one deadline per rule: `reference` plus the rule's offset, or minus it when `before`."""
    for rule in rules.deadline_rules(deadline):
        offset = _offset(rule.trigger, priority)
        if offset is None:
            continue
        due_at = reference - offset if before else reference + offset
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.deadlines (rule, aggregate_id, start_version, deadline, due_at, delay_seconds) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
            ).format(schema),
            (rule.name, event.aggregate_id, event.aggregate_version, deadline, due_at, int(offset.total_seconds())),
        )


def _move_first_response(
    conn: psycopg.Connection,
    schema: sql.Identifier,
    rules: RuleSet,
    event: DecodedEvent,
    ticket: Mapping[str, Any],
) -> None:
    """Recompute the first-response due time from the opening time and the new priority."""
    for rule in rules.deadline_rules("first_response"):
        offset = _offset(rule.trigger, str(event.fields["priority"]))
        if offset is None:
            continue
        conn.execute(
            sql.SQL(
                "UPDATE {}.deadlines SET due_at = %s, delay_seconds = %s "
                "WHERE rule = %s AND aggregate_id = %s AND deadline = 'first_response' AND status = 'scheduled'"
            ).format(schema),
            (ticket["opened_at"] + offset, int(offset.total_seconds()), rule.name, event.aggregate_id),
        )


def _offset(trigger: Any, priority: str | None) -> timedelta | None:
    if not isinstance(trigger, DeadlineTrigger):
        return None
    return trigger.offset_for(priority)
