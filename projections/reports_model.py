"""Changes that each ticket event makes to the reports' ticket fact row, without any SQL.

The definitions written in docs/projections.md are implemented here: which events
count, which agent an event counts for, and when a ticket is in the backlog.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ticketing.stream.decoded import DecodedEvent

# A ticket in one of these states is in the backlog: opened and not yet resolved,
# closed or merged into another ticket.
BACKLOG_STATUSES = frozenset({"open", "pending", "on_hold"})

# Ticket events that get a row in ticket_history: everything a daily report counts,
# and everything that changes the department, the assigned agent or backlog membership.
HISTORY_EVENTS = frozenset(
    {
        "Ticket.Opened",
        "Ticket.Assigned",
        "Ticket.Transferred",
        "Ticket.Resolved",
        "Ticket.Reopened",
        "Ticket.Closed",
        "Ticket.MergedInto",
        "Ticket.CallbackRequested",
        "Ticket.CallbackCompleted",
        "Ticket.CallbackMissed",
        "Ticket.SatisfactionRated",
    }
)


class ReportsApplyError(ValueError):
    """An event cannot be applied to the reports tables; it goes to the dead letters."""


@dataclass(frozen=True)
class TicketFacts:
    """One row of the `tickets` fact table: the ticket as it is after its latest event."""

    ticket_id: str
    customer_id: str
    channel: str
    department: str
    priority: str
    agent_id: str | None
    status: str
    opened_at: datetime
    first_response_at: datetime | None
    first_response_agent_id: str | None
    resolved_at: datetime | None
    resolution: str | None
    resolved_version: int | None
    closed_at: datetime | None
    reopen_count: int
    resolved_since_reopen: bool
    rating: int | None
    rated_at: datetime | None
    rating_version: int | None
    callback_outcome: str | None
    callbacks_requested: int
    public_reply_count: int
    merged_into: str | None
    version: int


@dataclass(frozen=True)
class TicketHistoryRow:
    """One row of `ticket_history`: an event with the ticket's dimensions right after it."""

    ticket_id: str
    version: int
    event_type: str
    occurred_at: datetime
    department: str
    channel: str
    assigned_agent_id: str | None
    credited_agent_id: str | None
    in_backlog: bool
    public_replies: int
    counted_reopen: bool
    first_response: bool
    seconds_since_opened: float
    score: int | None


@dataclass(frozen=True)
class TicketChange:
    facts: TicketFacts
    history: TicketHistoryRow | None


def apply_ticket_event(facts: TicketFacts | None, event: DecodedEvent) -> TicketChange:
    """Return the fact row after `event` and the history row it adds, if any.

    Raise ReportsApplyError for an event the fact row cannot take: any event before
    the ticket's Opened, a second Opened, or an unknown event type.
    """
    if event.event_type == "Ticket.Opened":
        if facts is not None:
            raise ReportsApplyError(f"ticket {event.aggregate_id} was already opened at version {facts.version}")
        after = _opened(event)
    else:
        if facts is None:
            raise ReportsApplyError(
                f"{event.event_type} v{event.aggregate_version} for ticket {event.aggregate_id} "
                "arrived before the ticket's Opened event was applied"
            )
        evolve = _TICKET_EVOLUTIONS.get(event.event_type)
        if evolve is None:
            raise ReportsApplyError(f"unknown ticket event type {event.event_type!r}")
        after = dataclasses.replace(evolve(facts, event), version=event.aggregate_version)
    return TicketChange(facts=after, history=_history_row(facts, after, event))


def _opened(event: DecodedEvent) -> TicketFacts:
    fields = event.fields
    return TicketFacts(
        ticket_id=event.aggregate_id,
        customer_id=str(fields["customer_id"]),
        channel=str(fields["channel"]),
        department=str(fields["department"]),
        priority=str(fields["priority"]),
        agent_id=None,
        status="open",
        opened_at=event.occurred_at,
        first_response_at=None,
        first_response_agent_id=None,
        resolved_at=None,
        resolution=None,
        resolved_version=None,
        closed_at=None,
        reopen_count=0,
        resolved_since_reopen=False,
        rating=None,
        rated_at=None,
        rating_version=None,
        callback_outcome=None,
        callbacks_requested=0,
        public_reply_count=0,
        merged_into=None,
        version=event.aggregate_version,
    )


def _agent_replied(facts: TicketFacts, event: DecodedEvent) -> TicketFacts:
    if event.fields["visibility"] != "public":
        return facts
    first = facts.first_response_at is None
    return dataclasses.replace(
        facts,
        public_reply_count=facts.public_reply_count + 1,
        first_response_at=event.occurred_at if first else facts.first_response_at,
        first_response_agent_id=str(event.fields["agent_id"]) if first else facts.first_response_agent_id,
    )


def _resolved(facts: TicketFacts, event: DecodedEvent) -> TicketFacts:
    return dataclasses.replace(
        facts,
        status="resolved",
        resolved_at=event.occurred_at,
        resolution=str(event.fields["resolution"]),
        resolved_version=event.aggregate_version,
        resolved_since_reopen=True,
    )


def _reopened(facts: TicketFacts, event: DecodedEvent) -> TicketFacts:
    # A reopen counts only when the ticket was resolved since it was opened or last
    # reopened. The resolution is cleared, so resolution time later measures to the
    # ticket's final resolution.
    return dataclasses.replace(
        facts,
        status="open",
        reopen_count=facts.reopen_count + (1 if facts.resolved_since_reopen else 0),
        resolved_since_reopen=False,
        resolved_at=None,
        resolution=None,
        resolved_version=None,
        closed_at=None,
    )


def _rated(facts: TicketFacts, event: DecodedEvent) -> TicketFacts:
    return dataclasses.replace(
        facts, rating=int(event.fields["score"]), rated_at=event.occurred_at, rating_version=event.aggregate_version
    )


def _unchanged(facts: TicketFacts, event: DecodedEvent) -> TicketFacts:
    return facts


_TICKET_EVOLUTIONS: dict[str, Callable[[TicketFacts, DecodedEvent], TicketFacts]] = {
    "Ticket.AttributesChanged": _unchanged,
    "Ticket.CustomerReplied": _unchanged,
    "Ticket.PriorityChanged": lambda f, e: dataclasses.replace(f, priority=str(e.fields["priority"])),
    "Ticket.Assigned": lambda f, e: dataclasses.replace(f, agent_id=str(e.fields["agent_id"])),
    "Ticket.Transferred": lambda f, e: dataclasses.replace(f, department=str(e.fields["department"])),
    "Ticket.AgentReplied": _agent_replied,
    "Ticket.MovedToPending": lambda f, e: dataclasses.replace(f, status="pending"),
    "Ticket.PutOnHold": lambda f, e: dataclasses.replace(f, status="on_hold"),
    "Ticket.Resumed": lambda f, e: dataclasses.replace(f, status="open"),
    "Ticket.Resolved": _resolved,
    "Ticket.Reopened": _reopened,
    "Ticket.Closed": lambda f, e: dataclasses.replace(f, status="closed", closed_at=e.occurred_at),
    "Ticket.MergedInto": lambda f, e: dataclasses.replace(
        f, status="merged", merged_into=str(e.fields["target_ticket_id"])
    ),
    "Ticket.CallbackRequested": lambda f, e: dataclasses.replace(
        f, callback_outcome="requested", callbacks_requested=f.callbacks_requested + 1
    ),
    "Ticket.CallbackCompleted": lambda f, e: dataclasses.replace(f, callback_outcome="completed"),
    "Ticket.CallbackMissed": lambda f, e: dataclasses.replace(f, callback_outcome="missed"),
    "Ticket.SatisfactionRated": _rated,
}


def _history_row(before: TicketFacts | None, after: TicketFacts, event: DecodedEvent) -> TicketHistoryRow | None:
    public_reply = event.event_type == "Ticket.AgentReplied" and event.fields["visibility"] == "public"
    if event.event_type not in HISTORY_EVENTS and not public_reply:
        return None
    return TicketHistoryRow(
        ticket_id=after.ticket_id,
        version=event.aggregate_version,
        event_type=event.event_type,
        occurred_at=event.occurred_at,
        department=after.department,
        channel=after.channel,
        assigned_agent_id=after.agent_id,
        credited_agent_id=credited_agent(after, event),
        in_backlog=after.status in BACKLOG_STATUSES,
        public_replies=after.public_reply_count,
        counted_reopen=(
            event.event_type == "Ticket.Reopened" and before is not None and after.reopen_count > before.reopen_count
        ),
        first_response=public_reply and before is not None and before.first_response_at is None,
        seconds_since_opened=(event.occurred_at - after.opened_at).total_seconds(),
        score=after.rating if event.event_type == "Ticket.SatisfactionRated" else None,
    )


def credited_agent(after: TicketFacts, event: DecodedEvent) -> str | None:
    """Return the agent an event counts for in the per-agent reports.

    A reply counts for the agent who wrote it and a completed callback for the agent who
    made the call. Every other event counts for the agent assigned right after it, or
    for no agent (shown as unassigned).
    """
    if event.event_type in ("Ticket.AgentReplied", "Ticket.CallbackCompleted"):
        return str(event.fields["agent_id"])
    return after.agent_id
