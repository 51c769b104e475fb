"""Audit timeline and as-of state, on eventsourcing's in-memory (POPO) persistence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest

from domain.errors import NotFound
from domain.values import Priority, TicketStatus
from ticketing.application import HelpdeskApplication
from ticketing.history import (
    REDACTED,
    AggregateKind,
    json_value,
    load_timeline,
    parse_timestamp,
    state_as_of,
)

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def app() -> Iterator[HelpdeskApplication]:
    application = HelpdeskApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield application
    application.close()


def ticket_with_callback(app: HelpdeskApplication) -> tuple[UUID, UUID]:
    customer_id, ticket_id = uuid4(), uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", "+44 1", occurred_at=T0)
    app.open_ticket(
        ticket_id, customer_id, "phone", "billing", "Call me", occurred_at=at(1),
        command_key="open-1", actor_id=f"customer:{customer_id}",
    )
    app.request_callback(ticket_id, "cb-1", "+44 1", at(30), at(60), occurred_at=at(2))
    app.change_ticket_priority(ticket_id, "urgent", occurred_at=at(3), actor_id="system:sla")
    return customer_id, ticket_id


# parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T09:00:00Z", T0),
        ("2024-05-01T11:00:00+02:00", T0),
        ("2024-05-01T09:00:00", T0),
        ("2024-05-01 09:00", T0),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=timezone.utc)),
    ],
)
def test_parse_timestamp_returns_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)

    assert parsed == expected
    assert parsed.tzinfo is timezone.utc


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "", "1714554000"])
def test_parse_timestamp_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_timestamp(text)

    assert str(caught.value) == (
        f"{text!r} is not an ISO 8601 timestamp. Use a form such as 2024-05-01T12:00:00Z "
        f"or 2024-05-01T14:00:00+02:00 (no offset means UTC)."
    )


# Timeline


def test_timeline_lists_every_event_with_metadata(app: HelpdeskApplication) -> None:
    customer_id, ticket_id = ticket_with_callback(app)

    timeline = load_timeline(app, AggregateKind.TICKET, ticket_id)

    assert [entry.event_type for entry in timeline.entries] == [
        "Ticket.Opened",
        "Ticket.CallbackRequested",
        "Ticket.PriorityChanged",
    ]
    assert [entry.version for entry in timeline.entries] == [1, 2, 3]
    assert [entry.occurred_at for entry in timeline.entries] == [at(1), at(2), at(3)]
    opened = timeline.entries[0]
    assert opened.actor_id == f"customer:{customer_id}"
    assert opened.command_key == "open-1"
    assert opened.recorded_at.tzinfo is not None
    assert opened.changes["customer_id"] == customer_id
    assert opened.changes["subject"] == "Call me"
    assert "occurred_at" not in opened.changes
    assert "originator_topic" not in opened.changes
    assert timeline.entries[2].changes == {"priority": Priority.URGENT}
    assert timeline.entries[2].actor_id == "system:sla"
    assert timeline.redacted is False


def test_timeline_entry_to_json(app: HelpdeskApplication) -> None:
    _, ticket_id = ticket_with_callback(app)

    entry = load_timeline(app, AggregateKind.TICKET, ticket_id).entries[1].to_json()

    assert entry["event_type"] == "Ticket.CallbackRequested"
    assert entry["occurred_at"] == "2024-05-01T09:02:00+00:00"
    assert entry["changes"] == {
        "callback_id": "cb-1",
        "phone": "+44 1",
        "window_start": "2024-05-01T09:30:00+00:00",
        "window_end": "2024-05-01T10:00:00+00:00",
    }


def test_forgotten_customer_timeline_is_redacted(app: HelpdeskApplication) -> None:
    customer_id = uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", "+44 1", occurred_at=T0)
    app.change_customer_contact_details(customer_id, email="turing@example.com", occurred_at=at(1))
    app.forget_customer(customer_id, occurred_at=at(2))

    timeline = load_timeline(app, AggregateKind.CUSTOMER, customer_id)

    registered, changed, forgotten = timeline.entries
    assert timeline.redacted is True
    assert registered.changes == {"name": REDACTED, "email": REDACTED, "phone": REDACTED, "language": "en"}
    assert changed.changes == {"name": None, "email": REDACTED, "phone": None}
    assert forgotten.event_type == "Customer.Forgotten"


def test_active_customer_timeline_is_not_redacted(app: HelpdeskApplication) -> None:
    customer_id = uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0)

    timeline = load_timeline(app, AggregateKind.CUSTOMER, customer_id)

    assert timeline.entries[0].changes["name"] == "Alan"
    assert timeline.redacted is False


def test_ticket_of_forgotten_customer_hides_callback_phone(app: HelpdeskApplication) -> None:
    customer_id, ticket_id = ticket_with_callback(app)
    app.forget_customer(customer_id, occurred_at=at(10))

    timeline = load_timeline(app, AggregateKind.TICKET, ticket_id)

    assert timeline.redacted is True
    assert timeline.entries[1].changes["phone"] == REDACTED
    assert timeline.entries[1].changes["callback_id"] == "cb-1"
    assert timeline.entries[0].changes["subject"] == "Call me"


def test_unknown_id_raises_not_found(app: HelpdeskApplication) -> None:
    unknown = uuid4()

    with pytest.raises(NotFound) as caught:
        load_timeline(app, AggregateKind.AGENT, unknown)

    assert str(caught.value) == (
        f"Agent {unknown} was not found: the event store has no events with that id. "
        f"Check the id and the EVENT_STORE_SCHEMA setting."
    )


def test_id_of_other_kind_names_right_command(app: HelpdeskApplication) -> None:
    _, ticket_id = ticket_with_callback(app)

    with pytest.raises(NotFound) as caught:
        load_timeline(app, AggregateKind.CUSTOMER, ticket_id)

    assert str(caught.value) == (
        f"Customer {ticket_id} was not found: that id belongs to Ticket {ticket_id}. "
        f"Run `ticketing history ticket {ticket_id}` instead."
    )


# State as of a business time


def test_state_as_of_replays_events_up_to_time(app: HelpdeskApplication) -> None:
    _, ticket_id = ticket_with_callback(app)
    app.resolve_ticket(ticket_id, "solved", occurred_at=at(20))

    before = state_as_of(app, AggregateKind.TICKET, ticket_id, at(2))
    after = state_as_of(app, AggregateKind.TICKET, ticket_id, at(20))

    assert before.events_applied == 2
    assert before.state["priority"] is Priority.NORMAL
    assert before.state["status"] is TicketStatus.OPEN
    assert before.state["callbacks"] == {"cb-1": "requested"}
    assert before.state["version"] == 2
    assert after.events_applied == 4
    assert after.state["status"] is TicketStatus.RESOLVED
    assert after.state["priority"] is Priority.URGENT


def test_state_as_of_between_events_uses_earlier_one(app: HelpdeskApplication) -> None:
    _, ticket_id = ticket_with_callback(app)

    state = state_as_of(app, AggregateKind.TICKET, ticket_id, at(2) + timedelta(seconds=59))

    assert state.events_applied == 2


def test_state_before_creation_raises_not_found(app: HelpdeskApplication) -> None:
    _, ticket_id = ticket_with_callback(app)

    with pytest.raises(NotFound) as caught:
        state_as_of(app, AggregateKind.TICKET, ticket_id, at(0))

    assert str(caught.value) == (
        f"Ticket {ticket_id} did not exist yet at 2024-05-01T09:00:00+00:00, because its "
        f"first event occurred at 2024-05-01T09:01:00+00:00. Use a later --as-of time."
    )


def test_state_of_forgotten_customer_is_redacted(app: HelpdeskApplication) -> None:
    customer_id = uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", "+44 1", occurred_at=T0)
    app.forget_customer(customer_id, occurred_at=at(5))

    state = state_as_of(app, AggregateKind.CUSTOMER, customer_id, at(1))

    assert state.redacted is True
    assert state.state["name"] == REDACTED
    assert state.state["email"] == REDACTED
    assert state.state["phone"] == REDACTED
    assert state.state["status"] == "active"


def test_agent_state_as_of_to_json(app: HelpdeskApplication) -> None:
    agent_id = uuid4()
    app.hire_agent(agent_id, "Ada", "ada@example.com", "temporary", date(2024, 6, 30), ["billing"], occurred_at=T0)
    app.set_agent_online(agent_id, occurred_at=at(1))
    app.pause_agent(agent_id, "lunch", occurred_at=at(2))

    state = state_as_of(app, AggregateKind.AGENT, agent_id, at(1)).to_json()

    assert state["kind"] == "agent"
    assert state["as_of"] == "2024-05-01T09:01:00+00:00"
    assert state["events_applied"] == 2
    assert state["state"]["status"] == "online"
    assert state["state"]["pause_reason"] is None
    assert state["state"]["engagement_ends_on"] == "2024-06-30"


def test_json_value_converts_nested_values() -> None:
    identifier = uuid4()

    converted = json_value({"id": identifier, "when": [T0, date(2024, 1, 2)], "priority": Priority.LOW})

    assert converted == {
        "id": str(identifier),
        "when": ["2024-05-01T09:00:00+00:00", "2024-01-02"],
        "priority": "low",
    }
