"""Build the field values that rule conditions test and templates show.

A context is a JSON object stored with each outbox row. Every field that the catalog
lists for the rule's trigger is present (None when unknown), so a template that passed
validation always finds its placeholders.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

from projections.notifications import catalog
from ticketing.stream.decoded import DecodedEvent

Context = dict[str, Any]

DURATION_UNITS = (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def display_time(moment: datetime) -> str:
    """Format an instant for people: '2024-05-01 09:30 UTC'."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def describe_duration(seconds: int) -> str:
    """Return an English duration in its largest whole unit, such as '3 days' or '90 minutes'."""
    for unit, size in DURATION_UNITS:
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}" + ("" if count == 1 else "s")
    return f"{seconds} seconds"


def json_value(value: Any) -> Any:
    """Convert an event or state value to JSON: times as display text, ids and enums as strings."""
    if isinstance(value, datetime):
        return display_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, enum.Enum)):
        return str(value.value if isinstance(value, enum.Enum) else value)
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    return value


def event_context(event: DecodedEvent, state: Mapping[str, Any] | None) -> Context:
    """Return the context of an event trigger: aggregate state, envelope, then the event's fields."""
    context: Context = dict.fromkeys(catalog.event_context_fields(event.event_type))
    context.update(state_context(event.aggregate_type, state))
    context.update(
        event_type=event.event_type,
        occurred_at=display_time(event.occurred_at),
        actor_id=event.actor_id,
        aggregate_id=event.aggregate_id,
        aggregate_version=event.aggregate_version,
    )
    for name in catalog.EVENT_FIELDS.get(event.event_type, ()):
        context[name] = json_value(event.fields.get(name))
    return context


def deadline_context(
    deadline: str,
    aggregate_type: str,
    aggregate_id: str,
    start_version: int,
    due_at: datetime,
    delay_seconds: int,
    state: Mapping[str, Any] | None,
) -> Context:
    """Return the context of a deadline trigger: aggregate state plus the deadline's own fields."""
    context: Context = dict.fromkeys(catalog.deadline_context_fields(deadline))
    context.update(state_context(aggregate_type, state))
    context.update(
        event_type=f"deadline:{deadline}",
        occurred_at=display_time(due_at),
        aggregate_id=aggregate_id,
        aggregate_version=start_version,
        deadline=deadline,
        due_at=display_time(due_at),
        delay=describe_duration(delay_seconds),
        # The renderer turns this into `delay` in the recipient's language.
        delay_seconds=delay_seconds,
    )
    return context


def state_context(aggregate_type: str, row: Mapping[str, Any] | None) -> Context:
    if row is None:
        return {}
    if aggregate_type == "Ticket":
        return {
            "ticket_id": str(row["ticket_id"]),
            "customer_id": json_value(row["customer_id"]),
            "subject": row["subject"],
            "department": row["department"],
            "priority": row["priority"],
            "channel": row["channel"],
            "status": row["status"],
            "assigned_agent_id": json_value(row["assigned_agent_id"]),
            "opened_at": json_value(row["opened_at"]),
        }
    if aggregate_type == "Agent":
        return {
            "agent_id": str(row["agent_id"]),
            "agent_name": row["name"],
            "employment": row["employment"],
            "engagement_ends_on": json_value(row["engagement_ends_on"]),
            "departments": list(row["departments"] or []),
            "agent_status": row["status"],
        }
    return {"customer_id": str(row["customer_id"]), "language": row["language"]}


def engagement_end(ends_on: date) -> datetime:
    """Return the instant a temporary engagement ends: midnight UTC after its last day."""
    following = ends_on + timedelta(days=1)
    return datetime(following.year, following.month, following.day, tzinfo=timezone.utc)
