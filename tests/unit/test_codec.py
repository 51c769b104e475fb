"""Avro single-object encoding: layout, fingerprints, round trips, old versions and decode errors."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest

from ticketing.stream.codec import (
    FINGERPRINT_HEADER,
    EVENT_TYPE_HEADER,
    MARKER,
    Codec,
    DecodedEvent,
    DecodeError,
    EncodeError,
    decode,
    encode,
)
from ticketing.stream.schemas import DEFAULT_SCHEMAS_DIR, SchemaError, SchemaRepository, StoredSchema

REPOSITORY = SchemaRepository.load(DEFAULT_SCHEMAS_DIR)
CODEC = Codec(REPOSITORY)
WHERE = {"topic": "helpdesk.tickets", "partition": 3, "offset": 42}

# --- An implementation of the Avro specification's fingerprint rules, written apart
# --- from fastavro, to check the bytes that the codec puts on the wire.

CRC64_EMPTY = 0xC15D213AA4D7A795


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO as the Avro specification gives it ("Schema Fingerprints")."""
    table = []
    for index in range(256):
        value = index
        for _ in range(8):
            value = (value >> 1) ^ (CRC64_EMPTY & -(value & 1))
        table.append(value)

    fingerprint = CRC64_EMPTY
    for byte in data:
        fingerprint = (fingerprint >> 8) ^ table[(fingerprint ^ byte) & 0xFF]
    return fingerprint


PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
CANONICAL_KEYS = ("name", "type", "fields", "symbols", "items", "values", "size")


def canonical_form(schema: Any, namespace: str = "") -> str:
    """Parsing canonical form by the Avro specification's transformation rules.

    Full names replace names and namespaces, only the attributes that affect
    parsing stay (in the order name, type, fields, symbols, items, values, size),
    primitives become plain strings and no whitespace remains.
    """
    if isinstance(schema, str):
        if schema in PRIMITIVES or "." in schema or not namespace:
            return json.dumps(schema)
        return json.dumps(f"{namespace}.{schema}")
    if isinstance(schema, list):
        return "[" + ",".join(canonical_form(branch, namespace) for branch in schema) + "]"

    kind = schema["type"]
    if kind in PRIMITIVES:
        return json.dumps(kind)

    parts = []
    if "name" in schema:
        name = schema["name"]
        if "." not in name:
            own_namespace = schema.get("namespace", namespace)
            name = f"{own_namespace}.{name}" if own_namespace else name
        namespace = name.rpartition(".")[0]
        parts.append(f'"name":{json.dumps(name)}')
    parts.append(f'"type":{canonical_form(kind, namespace) if isinstance(kind, (dict, list)) else json.dumps(kind)}')
    if "fields" in schema:
        fields = ",".join(
            f'{{"name":{json.dumps(field["name"])},"type":{canonical_form(field["type"], namespace)}}}'
            for field in schema["fields"]
        )
        parts.append(f'"fields":[{fields}]')
    if "symbols" in schema:
        parts.append(f'"symbols":{json.dumps(schema["symbols"], separators=(",", ":"))}')
    if "items" in schema:
        parts.append(f'"items":{canonical_form(schema["items"], namespace)}')
    if "values" in schema:
        parts.append(f'"values":{canonical_form(schema["values"], namespace)}')
    if "size" in schema:
        parts.append(f'"size":{schema["size"]}')
    return "{" + ",".join(parts) + "}"


# Test vectors from the Avro project, share/test/data/schema-tests.txt: input schema,
# canonical form and fingerprint as Java's signed 64-bit long.
AVRO_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"int"}', '"int"', 8247732601305521295),
    ('{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}', '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}', '{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    (
        '{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
        '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
        -4448647247586288245,
    ),
    ('{ "items":{"type":"null"}, "type":"array"}', '{"type":"array","items":"null"}', -589620603366471059),
    ('{ "values":"string", "type":"map"}', '{"type":"map","values":"string"}', -8732877298790414990),
    (
        '{"fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},'
        ' {"order":"descending","name":"f2","doc":"Hello","type":"int"}], "type":"record", "name":"foo"}',
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
        -4860222112080293046,
    ),
]


def as_unsigned(signed: int) -> int:
    return signed & 0xFFFFFFFFFFFFFFFF


def sample_value(avro_type: Any, named: dict[str, Any]) -> Any:
    """Return a valid value in decoded form for an Avro type."""
    if isinstance(avro_type, list):
        return sample_value([branch for branch in avro_type if branch != "null"][0], named)
    if isinstance(avro_type, str):
        if avro_type in named:
            return sample_value(named[avro_type], named)
        return {"string": "text \u00e9", "int": 3, "long": 7, "boolean": True}[avro_type]

    if "name" in avro_type:
        named[avro_type["name"]] = avro_type
    kind, logical = avro_type["type"], avro_type.get("logicalType")
    if logical == "uuid":
        return str(uuid4())
    if logical == "timestamp-micros":
        return datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    if logical == "date":
        return date(2024, 12, 31)
    if kind == "enum":
        return avro_type["symbols"][-1]
    if kind == "map":
        return {"source": "csv", "row": "17"}
    if kind == "array":
        return [sample_value(avro_type["items"], named), sample_value(avro_type["items"], named)]
    return sample_value(kind, named)


def sample_event(schema: StoredSchema, **envelope: Any) -> DecodedEvent:
    named: dict[str, Any] = {}
    fields = {field["name"]: sample_value(field["type"], named) for field in REPOSITORY.own_fields(schema)}
    event_type = schema.definition["doc"].split(" ", 1)[0]
    defaults = {
        "event_id": str(uuid4()),
        "event_type": event_type,
        "aggregate_type": event_type.split(".")[0],
        "aggregate_id": str(uuid4()),
        "aggregate_version": 4,
        "occurred_at": datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=timezone.utc),
        "recorded_at": datetime(2024, 1, 2, 3, 4, 6, 1, tzinfo=timezone.utc),
        "correlation_id": "import-7",
        "causation_id": "import-7#row-3",
        "command_key": "import-7#row-3",
        "actor_id": "system:importer",
    }
    defaults.update(envelope)
    return DecodedEvent(**defaults, fields=fields)


EVENT_SCHEMAS = REPOSITORY.event_schemas()
HISTORY_SCHEMAS = REPOSITORY.history_schemas()


def test_crc64_matches_avro_reference_vectors() -> None:
    for _, canonical, fingerprint in AVRO_VECTORS:
        assert crc64_avro(canonical.encode()) == as_unsigned(fingerprint), canonical


def test_canonical_form_rules_match_avro_reference_vectors() -> None:
    for schema_text, canonical, _ in AVRO_VECTORS:
        assert canonical_form(json.loads(schema_text)) == canonical, schema_text


@pytest.mark.parametrize("schema", list(REPOSITORY), ids=lambda schema: schema.path)
def test_fingerprint_follows_avro_specification(schema: StoredSchema) -> None:
    independent = canonical_form(schema.definition)

    assert schema.canonical_form == independent
    assert schema.fingerprint == crc64_avro(independent.encode()).to_bytes(8, "little")


@pytest.mark.parametrize("schema", EVENT_SCHEMAS, ids=lambda schema: schema.path)
def test_round_trip_every_event_type(schema: StoredSchema) -> None:
    event = sample_event(schema)

    value, headers = CODEC.encode(event)
    decoded = CODEC.decode(value, **WHERE)

    assert decoded == event
    assert dict(headers) == {
        EVENT_TYPE_HEADER: event.event_type.encode(),
        FINGERPRINT_HEADER: schema.fingerprint.hex().encode(),
    }


def test_value_starts_with_marker_and_fingerprint() -> None:
    schema = REPOSITORY.for_event_type("Ticket.Opened")

    value, _ = CODEC.encode(sample_event(schema))

    assert value[:2] == b"\xc3\x01" == MARKER
    assert value[2:10] == crc64_avro(schema.canonical_form.encode()).to_bytes(8, "little")


def test_module_functions_use_the_repository_schemas() -> None:
    event = sample_event(REPOSITORY.for_event_type("Agent.Hired"))

    value, headers = encode(event)

    assert decode(value, **WHERE) == event
    assert headers[0] == ("event-type", b"Agent.Hired")


def test_optional_fields_round_trip_as_none() -> None:
    event = sample_event(
        REPOSITORY.for_event_type("Customer.ContactDetailsChanged"),
        correlation_id=None,
        causation_id=None,
        command_key=None,
        actor_id=None,
    )
    event = dataclasses.replace(event, fields={"name": None, "email": "new@example.com", "phone": None})

    decoded = CODEC.decode(CODEC.encode(event)[0], **WHERE)

    assert decoded == event
    assert decoded.command_key is None


def test_decoded_datetimes_are_aware_utc() -> None:
    schema = REPOSITORY.for_event_type("Ticket.CallbackRequested")
    local = timezone(timedelta(hours=2))
    event = sample_event(schema, occurred_at=datetime(2024, 3, 1, 12, 0, tzinfo=local))
    event.fields["window_start"] = datetime(2024, 3, 1, 14, 0, 0, 1, tzinfo=local)

    decoded = CODEC.decode(CODEC.encode(event)[0], **WHERE)

    assert decoded.occurred_at == datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)
    assert decoded.occurred_at.tzinfo == timezone.utc
    assert decoded.fields["window_start"] == datetime(2024, 3, 1, 12, 0, 0, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("old_version", HISTORY_SCHEMAS, ids=lambda schema: schema.path)
def test_old_version_decodes_with_current_schema(old_version: StoredSchema) -> None:
    current = REPOSITORY.current(old_version.name)
    old_event = sample_event(old_version)

    value, headers = CODEC.encode(old_event, schema=old_version)
    decoded = CODEC.decode(value, **WHERE)

    assert value[2:10] == old_version.fingerprint
    assert dict(headers)[FINGERPRINT_HEADER] == old_version.fingerprint.hex().encode()
    added = {
        field["name"]: field["default"]
        for field in REPOSITORY.own_fields(current)
        if field["name"] not in old_event.fields
    }
    assert decoded.fields == {**old_event.fields, **added}
    assert decoded.aggregate_id == old_event.aggregate_id


def test_customer_registered_version_1_gets_language_en() -> None:
    old_version = next(schema for schema in HISTORY_SCHEMAS if schema.path.endswith("CustomerRegistered.v1.avsc"))
    event = sample_event(old_version)

    decoded = CODEC.decode(CODEC.encode(event, schema=old_version)[0], **WHERE)

    assert "language" not in event.fields
    assert decoded.fields["language"] == "en"


def test_encode_rejects_naive_datetime() -> None:
    event = sample_event(REPOSITORY.for_event_type("Ticket.Closed"), occurred_at=datetime(2024, 1, 1))

    with pytest.raises(EncodeError, match="occurred_at.*naive"):
        CODEC.encode(event)


def test_encode_rejects_unknown_enum_symbol() -> None:
    event = sample_event(REPOSITORY.for_event_type("Ticket.PriorityChanged"))
    event.fields["priority"] = "critical"

    with pytest.raises(EncodeError, match="priority.*'critical'.*low, normal, high, urgent"):
        CODEC.encode(event)


def test_encode_rejects_missing_field() -> None:
    event = sample_event(REPOSITORY.for_event_type("Ticket.Assigned"))
    event.fields.clear()

    with pytest.raises(EncodeError, match="agent_id: missing"):
        CODEC.encode(event)


def test_encode_rejects_malformed_uuid() -> None:
    event = sample_event(REPOSITORY.for_event_type("Ticket.Closed"), aggregate_id="ticket-7")

    with pytest.raises(EncodeError, match="aggregate_id: expected a UUID"):
        CODEC.encode(event)


def test_encode_rejects_unknown_event_type() -> None:
    event = sample_event(REPOSITORY.for_event_type("Ticket.Closed"), event_type="Ticket.Vanished")

    with pytest.raises(SchemaError, match="no schema for event type Ticket.Vanished"):
        CODEC.encode(event)


def assert_names_location(error: DecodeError) -> None:
    assert "topic helpdesk.tickets partition 3 offset 42" in str(error)
    assert (error.topic, error.partition, error.offset) == ("helpdesk.tickets", 3, 42)
    assert error.retriable is False


def test_decode_rejects_bad_marker() -> None:
    value, _ = CODEC.encode(sample_event(REPOSITORY.for_event_type("Ticket.Closed")))

    with pytest.raises(DecodeError, match="marker c3 01") as caught:
        CODEC.decode(b"\x00\x01" + value[2:], **WHERE)

    assert_names_location(caught.value)


def test_decode_rejects_short_value() -> None:
    with pytest.raises(DecodeError, match="got c3 01 12") as caught:
        CODEC.decode(b"\xc3\x01\x12", **WHERE)

    assert_names_location(caught.value)


def test_decode_rejects_plain_json() -> None:
    with pytest.raises(DecodeError, match="marker") as caught:
        CODEC.decode(b'{"event_type": "Ticket.Opened"}', **WHERE)

    assert_names_location(caught.value)


def test_decode_rejects_unknown_fingerprint() -> None:
    value, _ = CODEC.encode(sample_event(REPOSITORY.for_event_type("Ticket.Closed")))

    with pytest.raises(DecodeError, match="unknown schema fingerprint 0102030405060708") as caught:
        CODEC.decode(MARKER + bytes(range(1, 9)) + value[10:], **WHERE)

    assert_names_location(caught.value)


def test_decode_rejects_truncated_body() -> None:
    value, _ = CODEC.encode(sample_event(REPOSITORY.for_event_type("Ticket.Opened")))

    with pytest.raises(DecodeError, match="does not match schema helpdesk.events.TicketOpened") as caught:
        CODEC.decode(value[:-20], **WHERE)

    assert_names_location(caught.value)


def test_decode_rejects_trailing_bytes() -> None:
    value, _ = CODEC.encode(sample_event(REPOSITORY.for_event_type("Ticket.Closed")))

    with pytest.raises(DecodeError, match="3 bytes follow the end") as caught:
        CODEC.decode(value + b"abc", **WHERE)

    assert_names_location(caught.value)


def test_decode_rejects_tombstone() -> None:
    with pytest.raises(DecodeError, match="tombstone") as caught:
        CODEC.decode(None, **WHERE)

    assert_names_location(caught.value)


def test_decode_rejects_event_type_of_another_schema() -> None:
    schema = REPOSITORY.for_event_type("Ticket.Closed")
    event = sample_event(schema, event_type="Ticket.Reopened")

    value, _ = CODEC.encode(event, schema=schema)

    with pytest.raises(DecodeError, match="'Ticket.Reopened' does not belong to schema helpdesk.events.TicketClosed"):
        CODEC.decode(value, **WHERE)


def test_decode_rejects_corrupt_enum_index() -> None:
    schema = REPOSITORY.for_event_type("Ticket.Resolved")
    value, _ = CODEC.encode(sample_event(schema))

    # The enum index is the last varint of the body; 0x7e is zigzag 63, far past the 4 symbols.
    corrupt = value[:-1] + b"\x7e"

    with pytest.raises(DecodeError, match="does not match schema helpdesk.events.TicketResolved") as caught:
        CODEC.decode(corrupt, **WHERE)

    assert_names_location(caught.value)
