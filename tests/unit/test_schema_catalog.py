"""Every domain event has exactly one schema in schemas/, and the schema matches the event class.

The aggregates are discovered from the modules of the `domain` package, so a new
event class, or a new aggregate, without a schema fails here.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import types
import typing
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

import pytest

import domain
from domain.aggregate import HelpdeskAggregate
from ticketing.stream.events import BASE_EVENT_ATTRIBUTES, TOPIC_NAMES
from ticketing.stream.schemas import (
    DEFAULT_SCHEMAS_DIR,
    ENVELOPE_NAME,
    SchemaRepository,
    layout_problems,
    record_name,
)

# eventsourcing defines `Created` on every aggregate class and each aggregate
# declares `Event` as the common base of its events; neither is ever triggered.
BASE_EVENT_CLASS_NAMES = {"Event", "Created"}

ENVELOPE_FIELD_NAMES = [
    "event_id",
    "event_type",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "occurred_at",
    "recorded_at",
    "correlation_id",
    "causation_id",
    "command_key",
    "actor_id",
]


def discover_aggregates() -> list[type[HelpdeskAggregate]]:
    found = set()
    for module_info in pkgutil.iter_modules(domain.__path__):
        module = importlib.import_module(f"domain.{module_info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, HelpdeskAggregate)
                and value is not HelpdeskAggregate
                and value.__module__ == module.__name__
            ):
                found.add(value)
    return sorted(found, key=lambda aggregate: aggregate.__name__)


def discover_event_classes() -> dict[str, type]:
    events = {}
    for aggregate in discover_aggregates():
        for name, value in vars(aggregate).items():
            if (
                isinstance(value, type)
                and issubclass(value, HelpdeskAggregate.Event)
                and name not in BASE_EVENT_CLASS_NAMES
            ):
                events[f"{aggregate.__name__}.{name}"] = value
    return events


EVENT_CLASSES = discover_event_classes()
REPOSITORY = SchemaRepository.load(DEFAULT_SCHEMAS_DIR)


def own_fields(event_class: type) -> list[str]:
    return [item.name for item in dataclasses.fields(event_class) if item.name not in BASE_EVENT_ATTRIBUTES]


def expected_type(hint: Any) -> Any:
    """Describe the Avro type that a Python annotation must map to, per the wire contract."""
    if hint is str:
        return "string"
    if hint is bool:
        return "boolean"
    if hint is int:
        return "int"
    if hint is UUID:
        return ("string", "uuid")
    if hint is datetime:
        return ("long", "timestamp-micros")
    if hint is date:
        return ("int", "date")
    if isinstance(hint, type) and issubclass(hint, Enum):
        return ("enum", hint.__name__, tuple(member.value for member in hint))

    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in arguments:
        (inner,) = [argument for argument in arguments if argument is not type(None)]
        return ("optional", expected_type(inner))
    if origin is dict and arguments == (str, str):
        return ("map", "string")
    if origin is list:
        return ("array", expected_type(arguments[0]))
    raise AssertionError(f"no wire mapping for annotation {hint!r}")


def actual_type(avro_type: Any) -> Any:
    """Describe a parsed Avro type in the same form as expected_type."""
    if isinstance(avro_type, list):
        assert len(avro_type) == 2, f"unexpected union {avro_type}"
        assert avro_type[0] == "null", f"unexpected union {avro_type}"
        return ("optional", actual_type(avro_type[1]))
    if isinstance(avro_type, str):
        return avro_type

    kind = avro_type["type"]
    if kind == "enum":
        return ("enum", avro_type["name"].rsplit(".", 1)[-1], tuple(avro_type["symbols"]))
    if kind == "map":
        return ("map", actual_type(avro_type["values"]))
    if kind == "array":
        return ("array", actual_type(avro_type["items"]))
    if "logicalType" in avro_type:
        return (kind, avro_type["logicalType"])
    return kind


def test_discovery_finds_the_three_aggregates() -> None:
    assert [aggregate.__name__ for aggregate in discover_aggregates()] == ["Agent", "Customer", "Ticket"]
    assert "Ticket.Opened" in EVENT_CLASSES
    assert "Customer.Registered" in EVENT_CLASSES


@pytest.mark.parametrize("event_type", sorted(EVENT_CLASSES))
def test_event_has_exactly_one_schema(event_type: str) -> None:
    name = record_name(event_type)
    current = [schema for schema in REPOSITORY.current_schemas() if schema.name == name]

    assert len(current) == 1, f"{event_type} needs exactly one current schema named {name}"
    aggregate, event = event_type.split(".")
    assert current[0].path == f"{aggregate.lower()}/{aggregate}{event}.avsc"


@pytest.mark.parametrize("event_type", sorted(EVENT_CLASSES))
def test_schema_fields_match_event_fields(event_type: str) -> None:
    event_class = EVENT_CLASSES[event_type]
    schema = REPOSITORY.for_event_type(event_type)
    schema_fields = REPOSITORY.own_fields(schema)

    assert [field["name"] for field in schema_fields] == own_fields(event_class)

    hints = typing.get_type_hints(event_class)
    for avro_field in schema_fields:
        name = avro_field["name"]
        assert actual_type(avro_field["type"]) == expected_type(hints[name]), f"{event_type}.{name}"
        assert avro_field.get("doc"), f"{event_type}.{name} needs a doc string"
        if isinstance(avro_field["type"], list):
            assert avro_field.get("default", "missing") is None, f"optional {event_type}.{name} needs default null"


def test_every_event_schema_belongs_to_an_event_class() -> None:
    known = {record_name(event_type) for event_type in EVENT_CLASSES}
    orphans = [schema.path for schema in REPOSITORY.event_schemas() if schema.name not in known]

    assert orphans == []


def test_envelope_fields_come_first_everywhere() -> None:
    envelope = REPOSITORY.current(ENVELOPE_NAME)

    assert envelope is not None
    assert [field["name"] for field in envelope.parsed["fields"]] == ENVELOPE_FIELD_NAMES
    assert layout_problems(REPOSITORY) == []


def test_envelope_types_follow_the_contract() -> None:
    envelope = REPOSITORY.current(ENVELOPE_NAME)
    types_by_name = {field["name"]: actual_type(field["type"]) for field in envelope.parsed["fields"]}

    assert types_by_name["event_id"] == ("string", "uuid")
    assert types_by_name["aggregate_id"] == ("string", "uuid")
    assert types_by_name["aggregate_version"] == "long"
    assert types_by_name["occurred_at"] == ("long", "timestamp-micros")
    assert types_by_name["recorded_at"] == ("long", "timestamp-micros")
    for name in ("correlation_id", "causation_id", "command_key", "actor_id"):
        assert types_by_name[name] == ("optional", "string")


def test_named_types_agree_across_files() -> None:
    definitions: dict[str, set[str]] = {}
    for schema in REPOSITORY:
        for avro_field in schema.definition["fields"]:
            avro_type = avro_field["type"]
            if isinstance(avro_type, dict) and avro_type.get("type") == "enum":
                definitions.setdefault(avro_type["name"], set()).add(json.dumps(avro_type["symbols"]))

    disagreements = {name: symbols for name, symbols in definitions.items() if len(symbols) > 1}
    assert disagreements == {}


def test_every_aggregate_has_a_topic() -> None:
    assert {aggregate.__name__ for aggregate in discover_aggregates()} == set(TOPIC_NAMES)


def test_every_schema_documents_itself() -> None:
    undocumented = [schema.path for schema in REPOSITORY if not schema.definition.get("doc")]

    assert undocumented == []
