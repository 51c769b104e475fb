"""The Avro schemas in `schemas/`, indexed by fingerprint and by record name.

Layout of the folder:

    schemas/Envelope.avsc                         the fields every event schema starts with
    schemas/<aggregate>/<Aggregate><Event>.avsc   current schema of one event type
    schemas/<aggregate>/history/<Aggregate><Event>.v<N>.avsc
                                                  an older version, kept so that messages
                                                  written with it still decode

A message names its writer schema by the CRC-64-AVRO fingerprint of the schema's
parsing canonical form. The reader schema is always the current schema with the same
full name, so Avro schema resolution turns old data into the current shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

NAMESPACE = "helpdesk.events"
ENVELOPE_NAME = f"{NAMESPACE}.Envelope"
HISTORY_FOLDER = "history"

# This file lives at ticketing/stream/schemas.py, and schemas/ sits at the repository
# root next to ticketing/. That is true for a checkout and an editable install only.
DEFAULT_SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


class SchemaError(ValueError):
    """A schema file is missing, malformed or conflicts with another one."""


@dataclass(frozen=True)
class StoredSchema:
    """One `.avsc` file: its JSON, its fastavro form and its fingerprint."""

    path: str
    """Path relative to the schemas folder, with forward slashes."""
    definition: dict[str, Any]
    """The JSON object as written in the file."""
    parsed: dict[str, Any] = field(repr=False, compare=False)
    """fastavro's parsed form, for its readers and writers."""
    canonical_form: str = field(repr=False)
    fingerprint: bytes
    """CRC-64-AVRO of the parsing canonical form, 8 bytes little-endian."""

    @property
    def name(self) -> str:
        """Full record name, such as helpdesk.events.TicketOpened."""
        return str(self.parsed["name"])

    @property
    def is_history(self) -> bool:
        return HISTORY_FOLDER in self.path.split("/")[:-1]

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def parse_schema_text(path: str, text: str) -> StoredSchema:
    """Parse one `.avsc` file. Raise SchemaError naming the file on any problem."""
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as error:
        raise SchemaError(f"{path}: invalid JSON: {error}") from error

    if not isinstance(definition, dict) or definition.get("type") != "record":
        raise SchemaError(f"{path}: expected a JSON object with \"type\": \"record\"")

    try:
        # Each file is self-contained. Named types such as enums are defined inline in
        # every file that uses them, so a reader in any language can load one file alone.
        parsed = fastavro.parse_schema(definition)
    except Exception as error:
        # fastavro raises SchemaParseException, UnknownType, KeyError or ValueError
        # depending on the mistake, so catch them all and name the file.
        raise SchemaError(f"{path}: invalid Avro schema: {error}") from error

    canonical_form = to_parsing_canonical_form(parsed)
    return StoredSchema(
        path=path,
        definition=definition,
        parsed=parsed,
        canonical_form=canonical_form,
        fingerprint=schema_fingerprint(canonical_form),
    )


def schema_fingerprint(canonical_form: str) -> bytes:
    """Return the 8-byte CRC-64-AVRO fingerprint of a parsing canonical form.

    fastavro returns the hex of the bytes in little-endian order, which is the order
    of the Avro single-object encoding (Avro specification, "Single object encoding").
    Java's BinaryMessageDecoder reads SchemaNormalization.parsingFingerprint64 in the
    same order.
    """
    return bytes.fromhex(fastavro_fingerprint(canonical_form, "CRC-64-AVRO"))


class SchemaRepository:
    """All schemas of one folder or one git revision, current and historical."""

    def __init__(self, schemas: Iterable[StoredSchema]) -> None:
        self._all: list[StoredSchema] = sorted(schemas, key=lambda schema: schema.path)
        self._current: dict[str, StoredSchema] = {}
        self._by_fingerprint: dict[bytes, StoredSchema] = {}

        for schema in self._all:
            if schema.is_history:
                continue
            other = self._current.get(schema.name)
            if other is not None:
                raise SchemaError(
                    f"{schema.path} and {other.path} both define {schema.name}. Keep one "
                    f"current file per record name, and move older versions to {HISTORY_FOLDER}/"
                )
            self._current[schema.name] = schema

        for schema in self._all:
            if schema.is_history and schema.name not in self._current:
                raise SchemaError(
                    f"{schema.path} is an old version of {schema.name}, but no current "
                    f"schema has that name, so its messages would have no reader schema"
                )
            # A history file whose canonical form equals the current one adds nothing,
            # and the current file wins the fingerprint.
            if schema.fingerprint not in self._by_fingerprint or not schema.is_history:
                self._by_fingerprint[schema.fingerprint] = schema

    @classmethod
    def load(cls, directory: Path = DEFAULT_SCHEMAS_DIR) -> SchemaRepository:
        """Read every `.avsc` file below `directory`."""
        if not directory.is_dir():
            raise SchemaError(f"schema folder {directory} does not exist")
        texts = {
            path.relative_to(directory).as_posix(): path.read_text(encoding="utf-8")
            for path in directory.rglob("*.avsc")
        }
        return cls.from_texts(texts)

    @classmethod
    def from_texts(cls, texts: Mapping[str, str]) -> SchemaRepository:
        """Build a repository from file contents keyed by path relative to the folder."""
        return cls(parse_schema_text(path, text) for path, text in texts.items())

    def __iter__(self) -> Iterator[StoredSchema]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def by_fingerprint(self, fingerprint: bytes) -> StoredSchema | None:
        return self._by_fingerprint.get(fingerprint)

    def current(self, name: str) -> StoredSchema | None:
        """Return the current schema with full name `name`, or None."""
        return self._current.get(name)

    def current_schemas(self) -> list[StoredSchema]:
        return [schema for schema in self._all if not schema.is_history]

    def history_schemas(self) -> list[StoredSchema]:
        return [schema for schema in self._all if schema.is_history]

    def event_schemas(self) -> list[StoredSchema]:
        """Return the current schemas of event types, without the envelope."""
        return [schema for schema in self.current_schemas() if schema.name != ENVELOPE_NAME]

    def own_fields(self, schema: StoredSchema) -> list[dict[str, Any]]:
        """Return the fields of an event schema that follow the envelope fields."""
        envelope = self._current.get(ENVELOPE_NAME)
        if envelope is None:
            raise SchemaError("Envelope.avsc is missing: it defines the fields every event schema starts with")
        return list(schema.parsed["fields"][len(envelope.parsed["fields"]) :])

    def for_event_type(self, event_type: str) -> StoredSchema:
        """Return the current schema of an event type such as "Ticket.Opened"."""
        name = record_name(event_type)
        schema = self._current.get(name)
        if schema is None:
            raise SchemaError(
                f"no schema for event type {event_type}: add schemas/"
                f"{event_type.split('.')[0].lower()}/{name.rsplit('.', 1)[-1]}.avsc"
            )
        return schema


def record_name(event_type: str) -> str:
    """Return the Avro full name of an event type: "Ticket.Opened" -> helpdesk.events.TicketOpened."""
    aggregate_type, dot, event_name = event_type.partition(".")
    if not dot or not aggregate_type or not event_name or "." in event_name:
        raise SchemaError(f"event type {event_type!r} is invalid: expected '<Aggregate>.<Event>'")
    return f"{NAMESPACE}.{aggregate_type}{event_name}"


def layout_problems(repository: SchemaRepository) -> list[str]:
    """Return every violation of the folder's rules, one sentence each.

    Every event schema, current or historical, must start with the fields of the
    current Envelope.avsc, with the same names and Avro types in the same order. Then
    a consumer can read the envelope of any event the same way.
    """
    envelope = repository.current(ENVELOPE_NAME)
    if envelope is None:
        return ["Envelope.avsc is missing: it defines the fields every event schema starts with"]

    envelope_fields = envelope.parsed["fields"]
    problems = []
    for schema in repository:
        if schema.name == ENVELOPE_NAME:
            continue
        fields = schema.parsed["fields"]
        for position, expected in enumerate(envelope_fields):
            actual = fields[position] if position < len(fields) else None
            if actual is None or actual["name"] != expected["name"]:
                found = "nothing" if actual is None else repr(actual["name"])
                problems.append(
                    f"{schema.path}: field {position + 1} must be envelope field "
                    f"{expected['name']!r}, found {found}"
                )
                break
            if _field_type_form(actual) != _field_type_form(expected):
                problems.append(
                    f"{schema.path}: envelope field {expected['name']!r} has type "
                    f"{json.dumps(actual['type'])}, expected {json.dumps(expected['type'])}"
                )
    return problems


def _field_type_form(avro_field: Mapping[str, Any]) -> str:
    return json.dumps(avro_field["type"], sort_keys=True)
