"""Audit views of one aggregate, read straight from the event store.

`load_timeline` lists every stored event with its business time, recorded time,
type, actor and own fields. `state_as_of` rebuilds the state at a business time by
replaying the events whose `occurred_at` is not later than that time. Business time
never goes backwards within one aggregate (the domain rejects such commands), so
those events are a prefix of the version order.

Once a customer is forgotten, the personal fields of every earlier event of that
customer, and of the callbacks on that customer's tickets, are shown as "[forgotten]".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from enum import Enum, StrEnum
from typing import Any
from uuid import UUID

from domain.agent import Agent
from domain.aggregate import HelpdeskAggregate
from domain.customer import PERSONAL_FIELDS, Customer
from domain.errors import NotFound
from domain.ticket import Ticket
from ticketing.application import HelpdeskApplication

REDACTED = "[forgotten]"

# Fields that every event has. The rest are the event's own fields, shown as changes.
ENVELOPE_FIELDS = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "occurred_at",
        "command_key",
        "actor_id",
    }
)


class AggregateKind(StrEnum):
    TICKET = "ticket"
    AGENT = "agent"
    CUSTOMER = "customer"

    @property
    def aggregate_class(self) -> type[HelpdeskAggregate]:
        return {
            AggregateKind.TICKET: Ticket,
            AggregateKind.AGENT: Agent,
            AggregateKind.CUSTOMER: Customer,
        }[self]


@dataclasses.dataclass(frozen=True)
class TimelineEntry:
    """One stored event, as the audit timeline shows it."""

    version: int
    occurred_at: datetime
    recorded_at: datetime
    event_type: str
    actor_id: str | None
    command_key: str | None
    changes: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "occurred_at": self.occurred_at.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
            "event_type": self.event_type,
            "actor_id": self.actor_id,
            "command_key": self.command_key,
            "changes": json_value(self.changes),
        }


@dataclasses.dataclass(frozen=True)
class Timeline:
    kind: AggregateKind
    aggregate_id: UUID
    entries: Sequence[TimelineEntry]
    redacted: bool


@dataclasses.dataclass(frozen=True)
class StateAsOf:
    """State of an aggregate rebuilt from the events up to a business time."""

    kind: AggregateKind
    aggregate_id: UUID
    as_of: datetime
    state: Mapping[str, Any]
    events_applied: int
    redacted: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "aggregate_id": str(self.aggregate_id),
            "as_of": self.as_of.isoformat(),
            "events_applied": self.events_applied,
            "state": json_value(self.state),
        }


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 timestamp. A timestamp without an offset is read as UTC.

    Raises ValueError with a message that echoes the value and shows the format.
    """
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 timestamp. Use a form such as "
            f"2024-05-01T12:00:00Z or 2024-05-01T14:00:00+02:00 (no offset means UTC)."
        ) from None

    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def load_timeline(app: HelpdeskApplication, kind: AggregateKind, aggregate_id: UUID) -> Timeline:
    events = load_events(app, kind, aggregate_id)
    redact = personal_data_forgotten(app, kind, events)
    entries = [timeline_entry(event, redact=redact) for event in events]
    return Timeline(kind=kind, aggregate_id=aggregate_id, entries=entries, redacted=redact)


def state_as_of(
    app: HelpdeskApplication, kind: AggregateKind, aggregate_id: UUID, as_of: datetime
) -> StateAsOf:
    """Replay the events with occurred_at <= `as_of` and return the resulting state.

    Raises NotFound if the aggregate has no events, or none by `as_of`.
    """
    events = load_events(app, kind, aggregate_id)
    redact = personal_data_forgotten(app, kind, events)

    aggregate: HelpdeskAggregate | None = None
    applied = 0
    for event in events:
        if event.occurred_at > as_of:
            break
        aggregate = event.mutate(aggregate)
        applied += 1

    if aggregate is None:
        first = events[0].occurred_at.isoformat()
        raise NotFound(
            f"{kind.aggregate_class.__name__} {aggregate_id} did not exist yet at "
            f"{as_of.isoformat()}, because its first event occurred at {first}. "
            f"Use a later --as-of time.",
            aggregate_type=kind.aggregate_class.__name__,
            aggregate_id=aggregate_id,
        )

    # A ticket's state has no personal fields, because callback phone numbers are
    # only in its events, so only a customer's state needs redacting.
    state = dict(aggregate.to_dict())
    if redact and kind is AggregateKind.CUSTOMER:
        state = redacted(state, PERSONAL_FIELDS)

    return StateAsOf(
        kind=kind,
        aggregate_id=aggregate_id,
        as_of=as_of,
        state=state,
        events_applied=applied,
        redacted=redact,
    )


def load_events(
    app: HelpdeskApplication, kind: AggregateKind, aggregate_id: UUID
) -> list[HelpdeskAggregate.Event]:
    """Return the aggregate's events in version order, upcast to their current class.

    Raises NotFound if there are none, or if they belong to another aggregate type.
    """
    aggregate_class = kind.aggregate_class
    events = list(app.events.get(aggregate_id))
    if not events:
        raise NotFound(
            f"{aggregate_class.__name__} {aggregate_id} was not found: the event store "
            f"has no events with that id. Check the id and the EVENT_STORE_SCHEMA setting.",
            aggregate_type=aggregate_class.__name__,
            aggregate_id=aggregate_id,
        )

    first = events[0]
    if not isinstance(first, aggregate_class.Event):
        actual = _aggregate_name(first)
        raise NotFound(
            f"{aggregate_class.__name__} {aggregate_id} was not found: that id belongs to "
            f"{actual} {aggregate_id}. Run `ticketing history {actual.lower()} {aggregate_id}` instead.",
            aggregate_type=aggregate_class.__name__,
            aggregate_id=aggregate_id,
        )
    return [event for event in events if isinstance(event, HelpdeskAggregate.Event)]


def personal_data_forgotten(
    app: HelpdeskApplication, kind: AggregateKind, events: Sequence[HelpdeskAggregate.Event]
) -> bool:
    """Return True if the personal data in these events belongs to a forgotten customer."""
    if kind is AggregateKind.CUSTOMER:
        return any(isinstance(event, Customer.Forgotten) for event in events)

    if kind is AggregateKind.TICKET and isinstance(events[0], Ticket.Opened):
        customer = app.load_or_none(events[0].customer_id)
        # NOTE: a ticket whose customer is missing from the store (an incomplete
        # import) is shown unredacted, because no stored event marks the customer as forgotten.
        return isinstance(customer, Customer) and customer.is_forgotten

    return False


def timeline_entry(event: HelpdeskAggregate.Event, *, redact: bool) -> TimelineEntry:
    changes = {
        field.name: getattr(event, field.name)
        for field in dataclasses.fields(event)
        if field.name not in ENVELOPE_FIELDS
    }
    if redact:
        changes = redacted(changes, event.personal_fields)

    return TimelineEntry(
        version=event.originator_version,
        occurred_at=event.occurred_at,
        recorded_at=event.timestamp,
        event_type=type(event).__qualname__,
        actor_id=event.actor_id,
        command_key=event.command_key,
        changes=changes,
    )


def redacted(values: Mapping[str, Any], personal_fields: Iterable[str]) -> dict[str, Any]:
    """Return a copy with every personal field that has a value replaced by REDACTED."""
    names = set(personal_fields)
    return {
        name: REDACTED if name in names and value is not None else value
        for name, value in values.items()
    }


def json_value(value: Any) -> Any:
    """Convert UUIDs, enums, dates and datetimes, also inside containers, to JSON values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_value(item) for item in value]
    return value


def _aggregate_name(event: object) -> str:
    """Return "Ticket" for a Ticket.Opened event."""
    return type(event).__qualname__.split(".")[0]
