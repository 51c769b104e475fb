"""Conversion of Python values to the form that DecodedEvent.fields uses, checked against an Avro type.

It is the form that every consumer gets after decoding: enum members as their
string value, UUIDs as canonical lowercase strings, datetimes as aware UTC datetimes
and dates as `datetime.date`. Converting before encoding means that a relayed event
and the same event decoded from Kafka compare equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timezone
from enum import Enum
from typing import Any
from uuid import UUID

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


class ConformError(ValueError):
    """A value does not fit its Avro type. The message starts with the field path."""


def conform(value: Any, avro_type: Any, *, path: str, named: dict[str, Any] | None = None) -> Any:
    """Return `value` converted to the decoded form of `avro_type`. Raise ConformError if it does not fit.

    `avro_type` is a type as fastavro's parse_schema leaves it: a primitive name, a
    reference to a named type, a union list or a complex type object. `named`
    collects named types met so far, so that later references resolve.
    """
    named = {} if named is None else named

    if isinstance(avro_type, list):
        return _conform_union(value, avro_type, path=path, named=named)

    if isinstance(avro_type, str):
        if avro_type in named:
            return conform(value, named[avro_type], path=path, named=named)
        return _conform_primitive(value, avro_type, None, path=path)

    kind = avro_type["type"]
    if "name" in avro_type:
        named[avro_type["name"]] = avro_type

    if kind == "enum":
        return _conform_enum(value, avro_type, path=path)
    if kind == "map":
        return _conform_map(value, avro_type, path=path, named=named)
    if kind == "array":
        return _conform_array(value, avro_type, path=path, named=named)
    if kind == "record":
        return conform_record(value, avro_type, path=path, named=named)
    if isinstance(kind, str):
        return _conform_primitive(value, kind, avro_type.get("logicalType"), path=path)
    raise ConformError(f"{path}: unsupported Avro type {avro_type!r}")


def conform_record(
    value: Any, record_type: Mapping[str, Any], *, path: str, named: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return a dict with exactly the record's fields, using field defaults for missing keys."""
    named = {} if named is None else named
    if not isinstance(value, Mapping):
        raise ConformError(f"{path}: expected a mapping for record {record_type['name']}, got {value!r}")

    result = {}
    for avro_field in record_type["fields"]:
        name = avro_field["name"]
        field_path = f"{path}.{name}" if path else name
        if name in value:
            result[name] = conform(value[name], avro_field["type"], path=field_path, named=named)
        elif "default" in avro_field:
            result[name] = conform(avro_field["default"], avro_field["type"], path=field_path, named=named)
        else:
            raise ConformError(f"{field_path}: missing, and the schema gives no default")
    return result


def _conform_union(value: Any, branches: list[Any], *, path: str, named: dict[str, Any]) -> Any:
    if value is None and "null" in branches:
        return None

    errors = []
    for branch in branches:
        if branch == "null":
            continue
        try:
            return conform(value, branch, path=path, named=named)
        except ConformError as error:
            errors.append(str(error))
    raise ConformError(f"{path}: {value!r} fits no branch of the union ({' / '.join(errors)})")


def _conform_primitive(value: Any, kind: str, logical_type: str | None, *, path: str) -> Any:
    if kind == "string" and logical_type == "uuid":
        return _uuid_text(value, path=path)
    if kind == "long" and logical_type in ("timestamp-micros", "timestamp-millis"):
        return _utc_datetime(value, path=path)
    if kind == "int" and logical_type == "date":
        return _calendar_date(value, path=path)

    if kind == "null":
        if value is not None:
            raise ConformError(f"{path}: expected null, got {value!r}")
        return None
    if kind == "string":
        if not isinstance(value, str):
            raise ConformError(f"{path}: expected a string, got {value!r}")
        # str() turns a StrEnum member into its plain value.
        return str(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ConformError(f"{path}: expected a bool, got {value!r}")
        return value
    if kind in ("int", "long"):
        return _integer(value, kind, path=path)
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConformError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if kind == "bytes":
        if not isinstance(value, (bytes, bytearray)):
            raise ConformError(f"{path}: expected bytes, got {value!r}")
        return bytes(value)
    raise ConformError(f"{path}: unsupported Avro type {kind!r}")


def _integer(value: Any, kind: str, *, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConformError(f"{path}: expected an integer, got {value!r}")
    low, high = (INT_MIN, INT_MAX) if kind == "int" else (LONG_MIN, LONG_MAX)
    if not low <= value <= high:
        raise ConformError(f"{path}: {value} is outside the range of Avro {kind}")
    return value


def _conform_enum(value: Any, enum_type: Mapping[str, Any], *, path: str) -> str:
    symbol = value.value if isinstance(value, Enum) else value
    if symbol not in enum_type["symbols"]:
        options = ", ".join(enum_type["symbols"])
        raise ConformError(f"{path}: {value!r} is not a symbol of {enum_type['name']} ({options})")
    return str(symbol)


def _conform_map(value: Any, map_type: Mapping[str, Any], *, path: str, named: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConformError(f"{path}: expected a mapping, got {value!r}")
    result = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ConformError(f"{path}: map keys must be strings, got {key!r}")
        result[str(key)] = conform(item, map_type["values"], path=f"{path}[{key!r}]", named=named)
    return result


def _conform_array(value: Any, array_type: Mapping[str, Any], *, path: str, named: dict[str, Any]) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConformError(f"{path}: expected a list, got {value!r}")
    return [
        conform(item, array_type["items"], path=f"{path}[{index}]", named=named)
        for index, item in enumerate(value)
    ]


def _uuid_text(value: Any, *, path: str) -> str:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(UUID(value))
        except ValueError:
            pass
    raise ConformError(f"{path}: expected a UUID, got {value!r}")


def _utc_datetime(value: Any, *, path: str) -> datetime:
    if not isinstance(value, datetime):
        raise ConformError(f"{path}: expected a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        # fastavro would write a naive datetime as if it were UTC, so reject it instead of guessing.
        raise ConformError(f"{path}: {value.isoformat()} is a naive datetime, expected an aware one")
    return value.astimezone(timezone.utc)


def _calendar_date(value: Any, *, path: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ConformError(f"{path}: expected a date, got {value!r}")
    return value
