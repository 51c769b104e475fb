"""Conversion of stored eventsourcing domain events into DecodedEvent, the wire form.

Decisions that every subscriber relies on:

- event_type is the event class's qualified name, "<Aggregate>.<Event>".
- event_id is UUIDv5(EVENT_ID_NAMESPACE, "<aggregate_id>/<aggregate_version>"), so a
  republished event keeps its id and any service can recompute it.
- causation_id is the command key: the command is what caused the event.
- correlation_id is the part of the command key before its first "#", or the whole
  key if it has none. A caller that runs many commands as one unit of work (an
  import batch) gives them keys "<batch>#<item>", and all their events share the
  correlation id "<batch>". Both are None when the command had no key.
- occurred_at is the business time, recorded_at eventsourcing's `timestamp`.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import UUID, uuid5

from ticketing.stream.conform import ConformError, conform
from ticketing.stream.decoded import DecodedEvent
from ticketing.stream.schemas import SchemaError, SchemaRepository

EVENT_ID_NAMESPACE = UUID("8a0c3a4e-5d52-4c1b-9a57-1f3c1c2b6e0d")

CORRELATION_SEPARATOR = "#"

TIMESTAMP_TYPE = {"type": "long", "logicalType": "timestamp-micros"}

# Attributes that eventsourcing or HelpdeskAggregate.Event define on every event. The
# envelope carries them (originator_topic is eventsourcing's internal class path of a
# created aggregate and is not sent), so they are not part of an event's own fields.
BASE_EVENT_ATTRIBUTES = frozenset(
    {
        "originator_id",
        "originator_version",
        "timestamp",
        "originator_topic",
        "occurred_at",
        "command_key",
        "actor_id",
    }
)

# Logical topic name (before settings.topic() adds the prefix) for each aggregate type.
TOPIC_NAMES = {"Ticket": "tickets", "Agent": "agents", "Customer": "customers"}


class UnpublishableEvent(ValueError):
    """A stored event has no schema or does not fit it, so the relay cannot publish it."""


def event_type_of(event_class: type) -> str:
    """Return "<Aggregate>.<Event>" for an event class nested in its aggregate class."""
    return event_class.__qualname__


def own_field_names(event_class: type) -> list[str]:
    """Return the event's own dataclass fields in declaration order, without the envelope ones."""
    return [
        item.name
        for item in dataclasses.fields(event_class)
        if item.name not in BASE_EVENT_ATTRIBUTES
    ]


def event_id_for(aggregate_id: str, aggregate_version: int) -> str:
    return str(uuid5(EVENT_ID_NAMESPACE, f"{aggregate_id}/{aggregate_version}"))


def correlation_id_for(command_key: str | None) -> str | None:
    if command_key is None:
        return None
    return command_key.split(CORRELATION_SEPARATOR, 1)[0]


def topic_name_for(aggregate_type: str) -> str:
    """Return the logical topic name of an aggregate type, such as "tickets"."""
    try:
        return TOPIC_NAMES[aggregate_type]
    except KeyError:
        raise UnpublishableEvent(
            f"aggregate type {aggregate_type!r} has no topic. Known types: {', '.join(TOPIC_NAMES)}"
        ) from None


def decoded_from_domain_event(event: Any, repository: SchemaRepository) -> DecodedEvent:
    """Return the wire form of a domain event read from the event store.

    Raises UnpublishableEvent when the event type has no schema, when its own fields
    differ from the schema's, or when a value does not fit its Avro type. The relay
    stops on this error instead of skipping the event, because skipping loses it.
    """
    event_type = event_type_of(type(event))
    aggregate_type = event_type.split(".", 1)[0]
    aggregate_id = str(event.originator_id)
    aggregate_version = int(event.originator_version)
    where = f"{event_type} {aggregate_id} version {aggregate_version}"

    try:
        schema = repository.for_event_type(event_type)
        schema_fields = repository.own_fields(schema)
    except SchemaError as error:
        raise UnpublishableEvent(f"{where}: {error}") from error
    _check_same_fields(where, own_field_names(type(event)), schema_fields, schema.path)

    named: dict[str, Any] = {}
    fields = {}
    for avro_field in schema_fields:
        name = avro_field["name"]
        try:
            fields[name] = conform(getattr(event, name), avro_field["type"], path=name, named=named)
        except ConformError as error:
            raise UnpublishableEvent(f"{where}: {error}") from error

    command_key = event.command_key
    try:
        occurred_at = conform(event.occurred_at, TIMESTAMP_TYPE, path="occurred_at")
        recorded_at = conform(event.timestamp, TIMESTAMP_TYPE, path="timestamp")
    except ConformError as error:
        raise UnpublishableEvent(f"{where}: {error}") from error

    return DecodedEvent(
        event_id=event_id_for(aggregate_id, aggregate_version),
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        occurred_at=occurred_at,
        recorded_at=recorded_at,
        correlation_id=correlation_id_for(command_key),
        causation_id=command_key,
        command_key=command_key,
        actor_id=event.actor_id,
        fields=fields,
    )


def _check_same_fields(where: str, event_fields: list[str], schema_fields: list[dict[str, Any]], path: str) -> None:
    schema_names = [avro_field["name"] for avro_field in schema_fields]
    if set(event_fields) == set(schema_names):
        return
    missing = sorted(set(event_fields) - set(schema_names))
    extra = sorted(set(schema_names) - set(event_fields))
    raise UnpublishableEvent(
        f"{where}: the event class and schemas/{path} disagree "
        f"(fields missing from the schema: {missing or 'none'}; "
        f"schema fields the event lacks: {extra or 'none'})"
    )
