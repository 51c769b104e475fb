"""Avro single-object encoding of domain events, as written to and read from Kafka.

A message value is the two marker bytes C3 01, the 8-byte little-endian CRC-64-AVRO
fingerprint of the writer schema's parsing canonical form, then the Avro binary
body (Avro specification, "Single object encoding"). The headers repeat the
event type and the fingerprint in hex, so that routers need not parse the value.

Decoding looks the fingerprint up among all schemas in `schemas/`, old versions
included, and reads the body with the current schema of the same record name as
the reader schema.
"""

from __future__ import annotations

import io
from functools import cache
from typing import Any, ClassVar
from uuid import UUID

from fastavro import schemaless_reader, schemaless_writer

from ticketing.stream.conform import ConformError, conform_record
from ticketing.stream.decoded import DecodedEvent
from ticketing.stream.schemas import SchemaRepository, StoredSchema, record_name

__all__ = [
    "Codec",
    "DecodeError",
    "DecodedEvent",
    "EncodeError",
    "FINGERPRINT_HEADER",
    "EVENT_TYPE_HEADER",
    "MARKER",
    "decode",
    "encode",
    "default_codec",
]

MARKER = b"\xc3\x01"
FINGERPRINT_SIZE = 8
PREFIX_SIZE = len(MARKER) + FINGERPRINT_SIZE

EVENT_TYPE_HEADER = "event-type"
FINGERPRINT_HEADER = "schema-fingerprint"

ENVELOPE_FIELDS = (
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
)

Headers = list[tuple[str, bytes]]


class EncodeError(ValueError):
    """An event does not fit its schema, so it cannot be written."""


class DecodeError(ValueError):
    """A message value cannot be decoded. Names the topic, partition and offset.

    Decoding the same bytes again gives the same error, so a consumer should move
    the message to its dead letters instead of retrying.
    """

    retriable: ClassVar[bool] = False

    def __init__(self, reason: str, *, topic: str, partition: int, offset: int) -> None:
        super().__init__(
            f"cannot decode the message at topic {topic} partition {partition} "
            f"offset {offset}: {reason}"
        )
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset


class Codec:
    """Encoder and decoder bound to one set of schemas."""

    def __init__(self, repository: SchemaRepository) -> None:
        self.repository = repository

    def encode(self, event: DecodedEvent, *, schema: StoredSchema | None = None) -> tuple[bytes, Headers]:
        """Return the message value and headers of `event`.

        `schema` defaults to the current schema of the event type. Tests pass an old
        version to produce data as an older producer wrote it.
        """
        if schema is None:
            schema = self.repository.for_event_type(event.event_type)
        record = self._record_for(event, schema)

        body = io.BytesIO()
        body.write(MARKER)
        body.write(schema.fingerprint)
        schemaless_writer(body, schema.parsed, record)

        headers = [
            (EVENT_TYPE_HEADER, event.event_type.encode("utf-8")),
            (FINGERPRINT_HEADER, schema.fingerprint_hex.encode("ascii")),
        ]
        return body.getvalue(), headers

    def decode(self, value: bytes | None, *, topic: str, partition: int, offset: int) -> DecodedEvent:
        """Return the event in `value`. Raise DecodeError naming topic, partition and offset."""
        where = {"topic": topic, "partition": partition, "offset": offset}
        if value is None:
            raise DecodeError("the value is empty (a tombstone), but events are never deleted", **where)
        writer, reader = self._schemas_for(value, where)

        body = io.BytesIO(value)
        body.seek(PREFIX_SIZE)
        try:
            record = schemaless_reader(
                body, writer.parsed, None if writer is reader else reader.parsed
            )
        except Exception as error:
            # Corrupt bytes make fastavro fail in many ways (EOFError, UnicodeDecodeError,
            # IndexError for an enum index, ValueError for a UUID, MemoryError for a huge
            # length), so any failure here means the body does not match its schema.
            raise DecodeError(
                f"the Avro body does not match schema {writer.name} "
                f"(fingerprint {writer.fingerprint_hex}): {type(error).__name__}: {error}",
                **where,
            ) from error

        trailing = len(value) - body.tell()
        if trailing:
            raise DecodeError(
                f"{trailing} bytes follow the end of the {writer.name} record", **where
            )
        return self._event_from(record, reader, where)

    def _schemas_for(self, value: bytes, where: dict[str, Any]) -> tuple[StoredSchema, StoredSchema]:
        if len(value) < PREFIX_SIZE or not value.startswith(MARKER):
            raise DecodeError(
                f"expected the single-object marker c3 01 and an 8-byte fingerprint, "
                f"got {value[:PREFIX_SIZE].hex(' ') or 'no bytes'}",
                **where,
            )

        fingerprint = value[len(MARKER) : PREFIX_SIZE]
        writer = self.repository.by_fingerprint(fingerprint)
        if writer is None:
            raise DecodeError(
                f"unknown schema fingerprint {fingerprint.hex()}: no file in schemas/ has it. "
                f"Update schemas/ from the producer's repository",
                **where,
            )
        # SchemaRepository rejects a history schema without a current one, so every
        # writer found by fingerprint has a reader.
        reader = self.repository.current(writer.name) or writer
        return writer, reader

    def _record_for(self, event: DecodedEvent, schema: StoredSchema) -> dict[str, Any]:
        values = {name: getattr(event, name) for name in ENVELOPE_FIELDS}
        values.update(event.fields)
        try:
            return conform_record(values, schema.parsed, path="")
        except ConformError as error:
            raise EncodeError(
                f"{event.event_type} {event.aggregate_id} version {event.aggregate_version} "
                f"does not fit schema {schema.path}: {error}"
            ) from error

    def _event_from(self, record: dict[str, Any], reader: StoredSchema, where: dict[str, Any]) -> DecodedEvent:
        event_type = record["event_type"]
        if not isinstance(event_type, str) or _record_name_or_none(event_type) != reader.name:
            raise DecodeError(
                f"event_type {event_type!r} does not belong to schema {reader.name}", **where
            )

        envelope = {name: _plain(record[name]) for name in ENVELOPE_FIELDS}
        fields = {name: _plain(value) for name, value in record.items() if name not in envelope}
        return DecodedEvent(**envelope, fields=fields)


def _record_name_or_none(event_type: str) -> str | None:
    try:
        return record_name(event_type)
    except ValueError:
        return None


def _plain(value: Any) -> Any:
    """Return UUIDs that fastavro made from the "uuid" logical type as strings, at any depth."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


@cache
def default_codec() -> Codec:
    """Return a codec over the repository's `schemas/` folder, loaded on first use."""
    return Codec(SchemaRepository.load())


def encode(event: DecodedEvent) -> tuple[bytes, Headers]:
    """Encode with the current schema of the event type; see Codec.encode."""
    return default_codec().encode(event)


def decode(value: bytes | None, *, topic: str, partition: int, offset: int) -> DecodedEvent:
    """Decode with the schemas in `schemas/`; see Codec.decode."""
    return default_codec().decode(value, topic=topic, partition=partition, offset=offset)
