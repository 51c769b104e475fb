"""Conversion of stored domain events into the wire form, through eventsourcing's own mapper.

HelpdeskApplication runs on eventsourcing's in-memory persistence here, so the
events take the same JSON round trip as in PostgreSQL: enums come back as plain
strings, dates through the application's transcoding, UUIDs as UUID objects.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone
from uuid import UUID, uuid4, uuid5

import pytest

from ticketing.application import HelpdeskApplication
from ticketing.stream.codec import Codec
from ticketing.stream.events import (
    EVENT_ID_NAMESPACE,
    UnpublishableEvent,
    correlation_id_for,
    decoded_from_domain_event,
    event_id_for,
    topic_name_for,
)
from ticketing.stream.schemas import DEFAULT_SCHEMAS_DIR, SchemaRepository

REPOSITORY = SchemaRepository.load(DEFAULT_SCHEMAS_DIR)
CODEC = Codec(REPOSITORY)
START = datetime(2024, 6, 3, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def application() -> HelpdeskApplication:
    return HelpdeskApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def stored_events(application: HelpdeskApplication) -> list:
    notifications = application.recorder.select_notifications(start=1, limit=1000)
    return [application.mapper.to_domain_event(notification) for notification in notifications]


def decoded_events(application: HelpdeskApplication) -> list:
    return [decoded_from_domain_event(event, REPOSITORY) for event in stored_events(application)]


def run_story(application: HelpdeskApplication) -> dict[str, UUID]:
    ids = {"agent": uuid4(), "customer": uuid4(), "ticket": uuid4()}
    at = START
    application.hire_agent(
        ids["agent"], "Ann Agent", "ann@example.com", "temporary", date(2030, 1, 31), ["billing"], occurred_at=at
    )
    application.register_customer(ids["customer"], "Bo Customer", "bo@example.com", "+49 30 1234", "de", occurred_at=at)
    application.open_ticket(
        ids["ticket"],
        ids["customer"],
        "web_form",
        "billing",
        "Invoice wrong",
        "high",
        {"order": "A-17"},
        occurred_at=at + timedelta(minutes=1),
        command_key="import-2024-06#row-1",
        actor_id=f"customer:{ids['customer']}",
    )
    application.assign_ticket(ids["ticket"], ids["agent"], occurred_at=at + timedelta(minutes=2))
    application.request_callback(
        ids["ticket"],
        "cb-1",
        "+49 30 1234",
        datetime(2024, 6, 3, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 6, 3, 15, 0, tzinfo=timezone(timedelta(hours=2))),
        occurred_at=at + timedelta(minutes=3),
    )
    application.resolve_ticket(ids["ticket"], "wont_fix", occurred_at=at + timedelta(minutes=4))
    return ids


def test_stored_events_convert_with_plain_types(application: HelpdeskApplication) -> None:
    ids = run_story(application)

    events = {event.event_type: event for event in decoded_events(application)}

    assert set(events) == {
        "Agent.Hired",
        "Customer.Registered",
        "Ticket.Opened",
        "Ticket.Assigned",
        "Ticket.CallbackRequested",
        "Ticket.Resolved",
    }
    assert events["Ticket.Opened"].fields == {
        "customer_id": str(ids["customer"]),
        "channel": "web_form",
        "department": "billing",
        "subject": "Invoice wrong",
        "priority": "high",
        "attributes": {"order": "A-17"},
    }
    assert type(events["Ticket.Opened"].fields["channel"]) is str
    assert events["Ticket.Assigned"].fields == {"agent_id": str(ids["agent"])}
    assert events["Agent.Hired"].fields["engagement_ends_on"] == date(2030, 1, 31)
    assert events["Agent.Hired"].fields["employment"] == "temporary"
    assert events["Customer.Registered"].fields["language"] == "de"
    assert events["Ticket.CallbackRequested"].fields["window_start"] == datetime(2024, 6, 3, 12, 0, tzinfo=timezone.utc)
    assert events["Ticket.Resolved"].fields == {"resolution": "wont_fix"}


def test_envelope_comes_from_the_stored_event(application: HelpdeskApplication) -> None:
    ids = run_story(application)
    stored = {type(event).__qualname__: event for event in stored_events(application)}

    opened = decoded_from_domain_event(stored["Ticket.Opened"], REPOSITORY)

    assert opened.aggregate_type == "Ticket"
    assert opened.aggregate_id == str(ids["ticket"])
    assert opened.aggregate_version == 1
    assert opened.event_id == str(uuid5(EVENT_ID_NAMESPACE, f"{ids['ticket']}/1"))
    assert opened.occurred_at == START + timedelta(minutes=1)
    assert opened.recorded_at == stored["Ticket.Opened"].timestamp
    assert opened.recorded_at.tzinfo == timezone.utc
    assert opened.command_key == "import-2024-06#row-1"
    assert opened.causation_id == "import-2024-06#row-1"
    assert opened.correlation_id == "import-2024-06"
    assert opened.actor_id == f"customer:{ids['customer']}"


def test_envelope_without_command_key(application: HelpdeskApplication) -> None:
    run_story(application)

    assigned = next(event for event in decoded_events(application) if event.event_type == "Ticket.Assigned")

    assert assigned.aggregate_version == 2
    assert assigned.command_key is None
    assert assigned.causation_id is None
    assert assigned.correlation_id is None
    assert assigned.actor_id is None


def test_every_converted_event_survives_the_codec(application: HelpdeskApplication) -> None:
    run_story(application)

    for event in decoded_events(application):
        value, _ = CODEC.encode(event)
        assert CODEC.decode(value, topic="t", partition=0, offset=0) == event


def test_event_id_is_stable_for_aggregate_and_version() -> None:
    aggregate_id = "5f0c6b1e-0d5c-4a53-9c55-0b6d3f6f1a10"

    assert event_id_for(aggregate_id, 3) == event_id_for(aggregate_id, 3)
    assert event_id_for(aggregate_id, 3) != event_id_for(aggregate_id, 4)
    assert UUID(event_id_for(aggregate_id, 3)).version == 5


def test_correlation_id_takes_part_before_hash() -> None:
    assert correlation_id_for("batch-9#row-12") == "batch-9"
    assert correlation_id_for("batch-9#row-12#retry") == "batch-9"
    assert correlation_id_for("web-7f3a") == "web-7f3a"
    assert correlation_id_for(None) is None


def test_topic_names_per_aggregate_type() -> None:
    assert topic_name_for("Ticket") == "tickets"
    assert topic_name_for("Agent") == "agents"
    assert topic_name_for("Customer") == "customers"
    with pytest.raises(UnpublishableEvent, match="aggregate type 'Invoice' has no topic"):
        topic_name_for("Invoice")


@dataclasses.dataclass(frozen=True)
class FakeEvent:
    originator_id: UUID
    originator_version: int
    timestamp: datetime
    occurred_at: datetime
    command_key: str | None
    actor_id: str | None


def fake_event_class(qualified_name: str, **extra_fields: type) -> type:
    """Return a dataclass that looks like an event class called `qualified_name`."""
    annotations = {name: annotation for name, annotation in extra_fields.items()}
    namespace = {"__annotations__": annotations, "__qualname__": qualified_name}
    return dataclasses.dataclass(frozen=True)(type(qualified_name.split(".")[-1], (FakeEvent,), namespace))


def make_fake(event_class: type, **values: object) -> object:
    return event_class(
        originator_id=uuid4(),
        originator_version=2,
        timestamp=START,
        occurred_at=START,
        command_key=None,
        actor_id=None,
        **values,
    )


def test_event_field_missing_from_schema_is_rejected() -> None:
    closed_with_reason = fake_event_class("Ticket.Closed", reason=str)

    with pytest.raises(UnpublishableEvent, match=r"fields missing from the schema: \['reason'\]"):
        decoded_from_domain_event(make_fake(closed_with_reason, reason="spam"), REPOSITORY)


def test_schema_field_missing_from_event_is_rejected() -> None:
    resolved_without_resolution = fake_event_class("Ticket.Resolved")

    with pytest.raises(UnpublishableEvent, match=r"schema fields the event lacks: \['resolution'\]"):
        decoded_from_domain_event(make_fake(resolved_without_resolution), REPOSITORY)


def test_event_without_schema_is_rejected() -> None:
    escalated = fake_event_class("Ticket.Escalated")

    with pytest.raises(UnpublishableEvent, match="Ticket.Escalated .* no schema for event type Ticket.Escalated"):
        decoded_from_domain_event(make_fake(escalated), REPOSITORY)


def test_value_that_does_not_fit_is_rejected() -> None:
    resolved = fake_event_class("Ticket.Resolved", resolution=str)

    with pytest.raises(UnpublishableEvent, match="resolution: 'fixed' is not a symbol"):
        decoded_from_domain_event(make_fake(resolved, resolution="fixed"), REPOSITORY)
