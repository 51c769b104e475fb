"""Checks and conversions for command arguments.

Each function returns the value in its canonical type or raises InvalidValue with a
sentence that names the argument, echoes the bad value and states what was expected.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from enum import StrEnum
from typing import TypeVar
from uuid import UUID

from domain.errors import InvalidValue

E = TypeVar("E", bound=StrEnum)


def utc_datetime(value: object, *, field: str) -> datetime:
    """Return an aware datetime converted to UTC. Reject naive datetimes.

    A naive datetime has no defined instant, so guessing its zone would silently
    shift business time. Callers that mean UTC must pass tzinfo=timezone.utc.
    """
    if not isinstance(value, datetime):
        raise InvalidValue(
            f"{field} must be a timezone-aware datetime, but got {value!r}.",
            field=field,
            value=value,
        )

    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(
            f"{field} {value.isoformat()} is a naive datetime. "
            f"Pass a timezone-aware UTC datetime, for example datetime.now(timezone.utc).",
            field=field,
            value=value,
        )

    return value.astimezone(timezone.utc)


def enum_member(enum_type: type[E], value: object, *, field: str) -> E:
    """Return the member of `enum_type` whose value is `value`."""
    try:
        return enum_type(value)
    except ValueError:
        options = ", ".join(member.value for member in enum_type)
        raise InvalidValue(
            f"{field} {value!r} is not a valid {enum_type.__name__}. Use one of: {options}.",
            field=field,
            value=value,
        ) from None


def uuid_value(value: object, *, field: str) -> UUID:
    """Return `value` as a UUID. A string in any form that `uuid.UUID` parses is accepted."""
    if isinstance(value, UUID):
        return value

    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass

    raise InvalidValue(
        f"{field} {value!r} is not a UUID. Pass a UUID such as "
        f"'123e4567-e89b-12d3-a456-426614174000'.",
        field=field,
        value=value,
    )


def text(value: object, *, field: str, allow_empty: bool = False) -> str:
    """Return `value` if it is a string, and unless `allow_empty` also not blank."""
    if not isinstance(value, str):
        raise InvalidValue(
            f"{field} must be a string, but got {value!r}.", field=field, value=value
        )

    if not allow_empty and not value.strip():
        raise InvalidValue(f"{field} must not be empty.", field=field, value=value)

    return value


def optional_text(value: object, *, field: str) -> str | None:
    if value is None:
        return None
    return text(value, field=field)


def email_address(value: object, *, field: str = "email") -> str:
    """Return a stripped e-mail address that has text on both sides of one '@'."""
    address = text(value, field=field).strip()
    local, at, domain_part = address.partition("@")
    if not at or not local or not domain_part or "@" in domain_part:
        raise InvalidValue(
            f"{field} {value!r} is not an e-mail address. Use the form name@example.com.",
            field=field,
            value=value,
        )
    return address


def calendar_date(value: object, *, field: str) -> date:
    """Return `value` if it is a date. A datetime is rejected, because it hides a time of day."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidValue(
            f"{field} must be a date such as date(2024, 12, 31), but got {value!r}.",
            field=field,
            value=value,
        )
    return value


def string_map(value: object, *, field: str) -> dict[str, str]:
    """Return a copy of `value` if it maps strings to strings."""
    if not isinstance(value, dict):
        raise InvalidValue(
            f"{field} must be a dict of strings to strings, but got {value!r}.",
            field=field,
            value=value,
        )

    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise InvalidValue(
                f"{field} must map strings to strings, but {key!r} maps to {item!r}.",
                field=field,
                value=value,
            )

    return dict(value)


def department_names(value: object, *, field: str = "departments") -> list[str]:
    """Return department names without duplicates, in their first order."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidValue(
            f"{field} must be a list of department names, but got {value!r}.",
            field=field,
            value=value,
        )

    names: list[str] = []
    for item in value:
        name = text(item, field=field)
        if name not in names:
            names.append(name)
    return names
