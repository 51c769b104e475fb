"""Names that a notification rule may use: event types, deadlines, template fields, recipients.

The rules loader checks every rule against these tables, so that a misspelt event
type, field or recipient fails when the file is loaded, not when a message is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS = ("email", "slack")

PRIORITIES = ("low", "normal", "high", "urgent")

# Fields of each domain event type, as carried in DecodedEvent.fields.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "Ticket.Opened": ("customer_id", "channel", "department", "subject", "priority", "attributes"),
    "Ticket.AttributesChanged": ("attributes",),
    "Ticket.PriorityChanged": ("priority",),
    "Ticket.Assigned": ("agent_id",),
    "Ticket.Transferred": ("department",),
    "Ticket.AgentReplied": ("agent_id", "visibility", "body"),
    "Ticket.CustomerReplied": ("body",),
    "Ticket.MovedToPending": (),
    "Ticket.PutOnHold": (),
    "Ticket.Resumed": (),
    "Ticket.Resolved": ("resolution",),
    "Ticket.Reopened": (),
    "Ticket.Closed": (),
    "Ticket.MergedInto": ("target_ticket_id",),
    "Ticket.CallbackRequested": ("callback_id", "phone", "window_start", "window_end"),
    "Ticket.CallbackCompleted": ("callback_id", "agent_id"),
    "Ticket.CallbackMissed": ("callback_id",),
    "Ticket.SatisfactionRated": ("score", "comment"),
    "Agent.Hired": ("name", "email", "employment", "engagement_ends_on", "departments"),
    "Agent.DepartmentsChanged": ("departments",),
    "Agent.WentOnline": (),
    "Agent.WentOffline": (),
    "Agent.Paused": ("reason",),
    "Agent.Resumed": (),
    "Agent.Left": ("kind",),
    "Agent.EngagementEnded": ("ended_early",),
    "Customer.Registered": ("name", "email", "phone", "language"),
    "Customer.ContactDetailsChanged": ("name", "email", "phone"),
    "Customer.Forgotten": (),
}

# Fields that the projection keeps for each aggregate and adds to every context.
STATE_FIELDS: dict[str, tuple[str, ...]] = {
    "Ticket": (
        "ticket_id",
        "customer_id",
        "subject",
        "department",
        "priority",
        "channel",
        "status",
        "assigned_agent_id",
        "opened_at",
    ),
    "Agent": ("agent_id", "agent_name", "employment", "engagement_ends_on", "departments", "agent_status"),
    "Customer": ("customer_id", "language"),
}

ENVELOPE_FIELDS = ("event_type", "occurred_at", "actor_id", "aggregate_id", "aggregate_version")

# Added at dispatch time from the resolved recipient.
RECIPIENT_FIELDS = ("recipient_name",)

# Added to the context of a rule with a deadline trigger.
DEADLINE_FIELDS = ("deadline", "due_at", "delay")


@dataclass(frozen=True)
class DeadlineKind:
    """A timer that the projection starts and cancels on domain events."""

    name: str
    aggregate_type: str
    offset_key: str  # "after" (due after the start event) or "before" (due before an end)
    by_priority: bool  # whether the rule may give one duration per ticket priority
    description: str


DEADLINES: dict[str, DeadlineKind] = {
    "first_response": DeadlineKind(
        name="first_response",
        aggregate_type="Ticket",
        offset_key="after",
        by_priority=True,
        description="starts at Ticket.Opened, cancelled by the first public Ticket.AgentReplied "
        "or by Resolved, Closed or MergedInto",
    ),
    "customer_reply": DeadlineKind(
        name="customer_reply",
        aggregate_type="Ticket",
        offset_key="after",
        by_priority=False,
        description="starts at Ticket.MovedToPending, cancelled by CustomerReplied, Resumed, "
        "PutOnHold, Resolved, Closed or MergedInto",
    ),
    "engagement_end": DeadlineKind(
        name="engagement_end",
        aggregate_type="Agent",
        offset_key="before",
        by_priority=False,
        description="starts at Agent.Hired of a temporary agent, due the given time before the "
        "engagement ends (midnight UTC after engagement_ends_on), cancelled by Left or EngagementEnded",
    ),
}

# Symbolic recipients: name -> (aggregate types whose rules may use it, channels).
RECIPIENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "assigned_agent": (("Ticket",), ("email",)),
    "agent": (("Agent", "Ticket"), ("email",)),
    "customer": (("Ticket", "Customer"), ("email",)),
    "department": (("Ticket",), ("slack",)),
    "team_lead": (("Ticket",), ("email", "slack")),
    "admins": (("Ticket", "Agent", "Customer"), ("email",)),
}

# Ticket events whose fields include the agent that the "agent" recipient means.
TICKET_EVENTS_WITH_AGENT = ("Ticket.Assigned", "Ticket.AgentReplied", "Ticket.CallbackCompleted")


def aggregate_type_of(event_type: str) -> str:
    return event_type.split(".", 1)[0]


def event_context_fields(event_type: str) -> frozenset[str]:
    """Return every field name that a rule triggered by `event_type` may use."""
    aggregate_type = aggregate_type_of(event_type)
    return frozenset(
        EVENT_FIELDS[event_type] + STATE_FIELDS[aggregate_type] + ENVELOPE_FIELDS + RECIPIENT_FIELDS
    )


def deadline_context_fields(deadline: str) -> frozenset[str]:
    """Return every field name that a rule triggered by the deadline `deadline` may use."""
    kind = DEADLINES[deadline]
    return frozenset(
        STATE_FIELDS[kind.aggregate_type] + ENVELOPE_FIELDS + RECIPIENT_FIELDS + DEADLINE_FIELDS
    )
